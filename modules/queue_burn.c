/* queue_burn.c -- heavy work OFF the request path: a WasmService that burns CPU per queued message.
 *
 * Two roles in one module, chosen by root_id (like stats_service.c):
 *   root_id "burn_filter"  (HTTP filter, every worker): proxy_on_request_headers enqueues the
 *       request's path on the shared queue "work" of vm_id "queue_burn" and CONTINUES at once.
 *   root_id "burn_service" (WasmService, singleton, main thread): registers "work"; on
 *       proxy_on_queue_ready it drains the queue and, for EVERY message, runs an xorshift32 loop
 *       `iterations` times (plugin configuration {"iterations": N}) and counts the message in the
 *       counter queue_burn.done.
 * The filter never waits for the service: the request's latency should not depend on N
 * (lesson 07 measures it). Compare cpu_burn.c, which burns the same loop inside the request. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

static uint32_t queue_id, service_root, iterations = 1000000, done_metric;
static volatile uint32_t sink; /* keeps the loop's result alive */

static uint32_t burn(uint32_t n) {
  uint32_t x = 2463534242u;
  for (uint32_t i = 0; i < n; i++) x ^= x << 13, x ^= x >> 17, x ^= x << 5;
  return x;
}

void proxy_on_queue_ready(uint32_t root, uint32_t id) {
  for (;;) {
    pw_str msg = {NULL, 0};
    if (proxy_dequeue_shared_queue(id, &msg.data, &msg.len) != WASM_RESULT_OK) break; /* EMPTY */
    sink = burn(iterations);
    proxy_increment_metric(done_metric, 1);
    free((void *)msg.data);
  }
}

Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  pw_str path = {NULL, 0};
  pw_get_header(MAP_HTTP_REQUEST_HEADERS, ":path", &path);
  if (!queue_id) proxy_resolve_shared_queue("queue_burn", 10, "work", 4, &queue_id); /* late: see stats_service.c */
  if (queue_id) proxy_enqueue_shared_queue(queue_id, path.data, path.len);
  free((void *)path.data);
  return ACTION_CONTINUE; /* never wait for the service */
}

uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_str root_id = {NULL, 0}, config = {NULL, 0};
  if (pw_get_property("plugin_root_id", &root_id) != WASM_RESULT_OK) return 0;
  if (pw_str_eq(root_id, "burn_service")) {
    if (plugin_config_size) pw_get_plugin_config(plugin_config_size, &config);
    iterations = (uint32_t)pw_json_get_int(config, "iterations", 1000000);
    proxy_register_shared_queue("work", 4, &queue_id);
    proxy_define_metric(METRIC_COUNTER, "queue_burn.done", 15, &done_metric);
    service_root = root;
    pw_logf(LOG_INFO, "queue_burn: service burns %u iterations per message", iterations);
  }
  free((void *)root_id.data), free((void *)config.data);
  return 1;
}
