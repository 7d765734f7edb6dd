/* access_logger.c -- an access logger (envoy.access_loggers.wasm): one line per finished stream.
 *
 * An access logger is not a filter: it never sees a request while it is in flight and cannot
 * change it. Envoy gives it a root context per worker and, when a stream is over (the response
 * has been sent), calls proxy_on_log(root_context_id) with the stream's properties and its
 * request/response headers readable for the length of that call. This module logs
 *     access: GET /path -> 200 (upstream=backend, 3 request headers)
 * at info, from request.method/request.path/response.code and the cluster the route chose
 * (xds.cluster_name) and the number of request headers it can read, and counts the logged streams in a counter metric. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

static uint32_t logged_metric_;

void proxy_on_context_create(uint32_t ctx, uint32_t parent) {}
uint32_t proxy_on_vm_start(uint32_t root, size_t vm_config_size) { return 1; }
uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  const char *name = "access_logger.logged";
  proxy_define_metric(METRIC_COUNTER, name, pw_strlen(name), &logged_metric_);
  return 1;
}

/* Called on the access logger's ROOT context once per stream, after the response. */
void proxy_on_log(uint32_t root) {
  pw_str method = {0}, path = {0}, code = {0}, cluster = {0}, headers = {0};
  pw_get_property("request.method", &method);
  pw_get_property("request.path", &path);
  pw_get_property("xds.cluster_name", &cluster);
  proxy_get_header_map_pairs(MAP_HTTP_REQUEST_HEADERS, &headers.data, &headers.len);
  int64_t status = 0;
  /* response.code is an integer property: 8 bytes, little-endian */
  if (pw_get_property("response.code", &code) == WASM_RESULT_OK && code.len == 8) {
    for (int i = 7; i >= 0; i--) status = (status << 8) | (uint8_t)code.data[i];
  }
  pw_logf(LOG_INFO, "access: %S %S -> %d (upstream=%S, %u request headers)", method, path, (int)status, cluster,
          pw_pairs_count(headers));
  proxy_increment_metric(logged_metric_, 1);
}
uint32_t proxy_on_done(uint32_t ctx) { return 1; }
void proxy_on_delete(uint32_t ctx) {}
