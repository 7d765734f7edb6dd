/* hello.c -- the "hello world" of Proxy-Wasm, in C: log every callback the host makes.
 *
 * Same behaviour as hello.wat (the raw-ABI version), so the two logs can be compared line by
 * line. Each callback logs its name, the context id and its numeric arguments at info, e.g.
 *     proxy_on_request_headers ctx=2 num_headers=6 end_of_stream=1 path=/hello
 * Extras that make the host do visible work:
 *   - proxy_on_request_headers reads the :path header back (the host must call our malloc),
 *   - proxy_on_configure starts a 1000 ms timer when the plugin configuration is non-empty,
 *     so proxy_on_tick shows up.
 * Nothing is changed in the traffic. The TCP callbacks are here too, so the same module also
 * works as a network filter (envoy.filters.network.wasm). */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

/* ---- lifecycle ---- */
void proxy_on_context_create(uint32_t ctx, uint32_t parent) {
  pw_logf(LOG_INFO, "proxy_on_context_create ctx=%u parent=%u", ctx, parent);
}
uint32_t proxy_on_vm_start(uint32_t root, size_t vm_config_size) {
  pw_logf(LOG_INFO, "proxy_on_vm_start ctx=%u vm_config_size=%u", root, vm_config_size);
  return 1; /* 0 would make the host refuse the VM */
}
uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_logf(LOG_INFO, "proxy_on_configure ctx=%u plugin_config_size=%u", root, plugin_config_size);
  if (plugin_config_size > 0) proxy_set_tick_period_milliseconds(1000);
  return 1; /* 0 would make the host refuse the configuration */
}
void proxy_on_tick(uint32_t root) { pw_logf(LOG_INFO, "proxy_on_tick ctx=%u", root); }
void proxy_on_queue_ready(uint32_t root, uint32_t queue_id) {
  pw_logf(LOG_INFO, "proxy_on_queue_ready ctx=%u queue_id=%u", root, queue_id);
}

/* ---- HTTP stream ---- */
Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  pw_str path;
  WasmResult rc = pw_get_header(MAP_HTTP_REQUEST_HEADERS, ":path", &path);
  pw_logf(LOG_INFO, "proxy_on_request_headers ctx=%u num_headers=%u end_of_stream=%u path=%S", ctx, num_headers,
          end_of_stream, path);
  if (rc == WASM_RESULT_OK) free((void *)path.data);
  return ACTION_CONTINUE;
}
Action proxy_on_request_body(uint32_t ctx, size_t body_size, uint32_t end_of_stream) {
  pw_logf(LOG_INFO, "proxy_on_request_body ctx=%u body_size=%u end_of_stream=%u", ctx, body_size, end_of_stream);
  return ACTION_CONTINUE;
}
Action proxy_on_request_trailers(uint32_t ctx, uint32_t num_trailers) {
  pw_logf(LOG_INFO, "proxy_on_request_trailers ctx=%u num_trailers=%u", ctx, num_trailers);
  return ACTION_CONTINUE;
}
Action proxy_on_response_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  pw_logf(LOG_INFO, "proxy_on_response_headers ctx=%u num_headers=%u end_of_stream=%u", ctx, num_headers,
          end_of_stream);
  return ACTION_CONTINUE;
}
Action proxy_on_response_body(uint32_t ctx, size_t body_size, uint32_t end_of_stream) {
  pw_logf(LOG_INFO, "proxy_on_response_body ctx=%u body_size=%u end_of_stream=%u", ctx, body_size, end_of_stream);
  return ACTION_CONTINUE;
}
Action proxy_on_response_trailers(uint32_t ctx, uint32_t num_trailers) {
  pw_logf(LOG_INFO, "proxy_on_response_trailers ctx=%u num_trailers=%u", ctx, num_trailers);
  return ACTION_CONTINUE;
}

/* ---- TCP connection (when used as a network filter) ---- */
Action proxy_on_new_connection(uint32_t ctx) {
  pw_logf(LOG_INFO, "proxy_on_new_connection ctx=%u", ctx);
  return ACTION_CONTINUE;
}
Action proxy_on_downstream_data(uint32_t ctx, size_t data_size, uint32_t end_of_stream) {
  pw_logf(LOG_INFO, "proxy_on_downstream_data ctx=%u data_size=%u end_of_stream=%u", ctx, data_size, end_of_stream);
  return ACTION_CONTINUE;
}
Action proxy_on_upstream_data(uint32_t ctx, size_t data_size, uint32_t end_of_stream) {
  pw_logf(LOG_INFO, "proxy_on_upstream_data ctx=%u data_size=%u end_of_stream=%u", ctx, data_size, end_of_stream);
  return ACTION_CONTINUE;
}
void proxy_on_downstream_connection_close(uint32_t ctx, PeerType peer) {
  pw_logf(LOG_INFO, "proxy_on_downstream_connection_close ctx=%u peer=%u", ctx, peer);
}
void proxy_on_upstream_connection_close(uint32_t ctx, PeerType peer) {
  pw_logf(LOG_INFO, "proxy_on_upstream_connection_close ctx=%u peer=%u", ctx, peer);
}

/* ---- answers to HTTP callouts (this module makes none, the export just shows the signature) ---- */
void proxy_on_http_call_response(uint32_t root, uint32_t token, uint32_t num_headers, size_t body_size,
                                 uint32_t num_trailers) {
  pw_logf(LOG_INFO, "proxy_on_http_call_response ctx=%u token=%u num_headers=%u body_size=%u num_trailers=%u", root,
          token, num_headers, body_size, num_trailers);
}

/* ---- the end of a context: HTTP streams get on_log, on_done, on_delete (in that order) ---- */
void proxy_on_log(uint32_t ctx) { pw_logf(LOG_INFO, "proxy_on_log ctx=%u", ctx); }
uint32_t proxy_on_done(uint32_t ctx) {
  pw_logf(LOG_INFO, "proxy_on_done ctx=%u", ctx);
  return 1; /* 1 = finished, the host may delete the context now */
}
void proxy_on_delete(uint32_t ctx) { pw_logf(LOG_INFO, "proxy_on_delete ctx=%u", ctx); }
