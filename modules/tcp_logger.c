/* tcp_logger.c -- a NETWORK filter: sees a TCP connection as two byte streams, not as HTTP.
 *
 * Put it in a listener's filter chain before envoy.filters.network.tcp_proxy. It logs
 *   - proxy_on_new_connection           a client connected
 *   - proxy_on_downstream_data          bytes from the client (buffer 2), with a preview
 *   - proxy_on_upstream_data            bytes from the upstream server (buffer 3), with a preview
 *   - proxy_on_*_connection_close       who closed (peer 0 unknown, 1 local, 2 remote)
 *   - proxy_on_done / proxy_on_log      the end of the connection, with its byte totals
 * and counts connections and bytes in the metrics tcp_logger.connections,
 * tcp_logger.downstream_bytes, tcp_logger.upstream_bytes (wasmcustom.* in Envoy's /stats).
 * Data is never changed or held: every callback returns ACTION_CONTINUE. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

static uint32_t connections_metric, downstream_bytes_metric, upstream_bytes_metric;

/* per-connection totals, in a small table keyed by context id */
#define MAX_CONNECTIONS 256
static struct {
  uint32_t ctx;
  uint64_t down, up;
} conns[MAX_CONNECTIONS];

static int slot(uint32_t ctx) { /* the row of ctx, created if needed; -1 if the table is full */
  int free_row = -1;
  for (int i = 0; i < MAX_CONNECTIONS; i++) {
    if (conns[i].ctx == ctx) return i;
    if (conns[i].ctx == 0 && free_row < 0) free_row = i;
  }
  if (free_row >= 0) conns[free_row].ctx = ctx, conns[free_row].down = conns[free_row].up = 0;
  return free_row;
}

uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  proxy_define_metric(METRIC_COUNTER, "tcp_logger.connections", 22, &connections_metric);
  proxy_define_metric(METRIC_COUNTER, "tcp_logger.downstream_bytes", 27, &downstream_bytes_metric);
  proxy_define_metric(METRIC_COUNTER, "tcp_logger.upstream_bytes", 25, &upstream_bytes_metric);
  return 1;
}

Action proxy_on_new_connection(uint32_t ctx) {
  pw_str peer = {NULL, 0};
  pw_get_property("source.address", &peer); /* "127.0.0.1:54321" */
  pw_logf(LOG_INFO, "tcp_logger: ctx=%u new connection from %S", ctx, peer);
  free((void *)peer.data);
  slot(ctx);
  proxy_increment_metric(connections_metric, 1);
  return ACTION_CONTINUE;
}

/* log size and the first bytes (non-printable ones as '.') of a data buffer */
static void log_data(const char *direction, BufferType buffer, uint32_t ctx, size_t size, uint32_t eos) {
  pw_str data = {NULL, 0};
  char preview[33];
  size_t n = 0;
  if (size > 0 && pw_get_buffer(buffer, 0, 32, &data) == WASM_RESULT_OK) {
    for (; n < data.len; n++) preview[n] = (data.data[n] >= 32 && data.data[n] < 127) ? data.data[n] : '.';
    free((void *)data.data);
  }
  pw_logf(LOG_INFO, "tcp_logger: ctx=%u %s %u bytes end_of_stream=%u \"%.*s%s\"", ctx, direction, size, eos, (int)n,
          preview, size > n ? "..." : "");
}

Action proxy_on_downstream_data(uint32_t ctx, size_t data_size, uint32_t end_of_stream) {
  log_data("client->upstream", BUFFER_DOWNSTREAM_DATA, ctx, data_size, end_of_stream);
  int row = slot(ctx);
  if (row >= 0) conns[row].down += data_size;
  if (data_size) proxy_increment_metric(downstream_bytes_metric, data_size); /* counter deltas must be > 0 */
  return ACTION_CONTINUE;
}

Action proxy_on_upstream_data(uint32_t ctx, size_t data_size, uint32_t end_of_stream) {
  log_data("upstream->client", BUFFER_UPSTREAM_DATA, ctx, data_size, end_of_stream);
  int row = slot(ctx);
  if (row >= 0) conns[row].up += data_size;
  if (data_size) proxy_increment_metric(upstream_bytes_metric, data_size);
  return ACTION_CONTINUE;
}

static const char *peer_name(PeerType peer) {
  return peer == PEER_LOCAL ? "local" : peer == PEER_REMOTE ? "remote" : "unknown";
}
void proxy_on_downstream_connection_close(uint32_t ctx, PeerType peer) {
  pw_logf(LOG_INFO, "tcp_logger: ctx=%u downstream connection closed (peer %u = %s)", ctx, peer, peer_name(peer));
}
void proxy_on_upstream_connection_close(uint32_t ctx, PeerType peer) {
  pw_logf(LOG_INFO, "tcp_logger: ctx=%u upstream connection closed (peer %u = %s)", ctx, peer, peer_name(peer));
}

uint32_t proxy_on_done(uint32_t ctx) {
  pw_logf(LOG_INFO, "tcp_logger: ctx=%u done", ctx);
  return 1;
}
void proxy_on_log(uint32_t ctx) {
  int row = slot(ctx);
  if (row >= 0)
    pw_logf(LOG_INFO, "tcp_logger: ctx=%u connection summary: %llu bytes client->upstream, %llu bytes upstream->client",
            ctx, conns[row].down, conns[row].up);
}
void proxy_on_delete(uint32_t ctx) {
  for (int i = 0; i < MAX_CONNECTIONS; i++)
    if (conns[i].ctx == ctx) conns[i].ctx = 0;
}
