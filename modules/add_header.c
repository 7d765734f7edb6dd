/* add_header.c -- add configured headers to every request and response.
 *
 * Plugin configuration (config.configuration in Envoy's YAML), JSON:
 *     {"request_headers": {"x-a": "1"}, "response_headers": {"x-b": "2"}}
 * Every pair under "request_headers" is added to the request before it goes upstream, every
 * pair under "response_headers" to the response before it goes to the client. Both keys are
 * optional. A configuration that is not a JSON object is refused (proxy_on_configure returns 0,
 * and Envoy then refuses the whole config).
 *
 * Lessons: reading the plugin configuration in proxy_on_configure (root context), keeping it in
 * module memory, and using it later in the stream callbacks (stream contexts).
 *
 * One configuration per VM: if two plugins share a VM (same vm_config), the last one configured
 * wins. Give each plugin its own vm_id to keep them apart. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

/* The configuration text stays allocated while it is in use: the slices below point into it. */
static pw_str config;
static pw_str request_headers;  /* the {...} object under "request_headers", or empty */
static pw_str response_headers; /* the {...} object under "response_headers", or empty */

uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_str text = {NULL, 0};
  if (plugin_config_size > 0 && pw_get_plugin_config(plugin_config_size, &text) != WASM_RESULT_OK) return 0;
  pw_str req = {NULL, 0}, resp = {NULL, 0};
  if (text.len > 0) {
    pw_json_iter it = pw_json_members(text);
    if (it.pos == PW_JSON_BAD) {
      pw_logf(LOG_ERROR, "add_header: configuration is not a JSON object: %S", text);
      free((void *)text.data);
      return 0; /* refuse the configuration */
    }
    if (pw_json_get(text, "request_headers", &req) != '{') req.len = 0;
    if (pw_json_get(text, "response_headers", &resp) != '{') resp.len = 0;
  }
  free((void *)config.data); /* a reconfiguration replaces the old text */
  config = text, request_headers = req, response_headers = resp;
  pw_logf(LOG_INFO, "add_header: root ctx=%u configured: request_headers=%S response_headers=%S", root,
          request_headers, response_headers);
  return 1;
}

/* add every "name": "value" member of `object` to `map` */
static void add_all(MapType map, pw_str object) {
  pw_json_iter it = pw_json_members(object);
  pw_str name, value;
  char kind;
  while ((kind = pw_json_next(&it, &name, &value))) {
    if (kind != '"') continue; /* only string values make sense as header values */
    WasmResult rc = proxy_add_header_map_value(map, name.data, name.len, value.data, value.len);
    if (rc != WASM_RESULT_OK) pw_logf(LOG_WARN, "add_header: adding %S failed with status %u", name, rc);
  }
}

Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  add_all(MAP_HTTP_REQUEST_HEADERS, request_headers);
  return ACTION_CONTINUE;
}

Action proxy_on_response_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  add_all(MAP_HTTP_RESPONSE_HEADERS, response_headers);
  return ACTION_CONTINUE;
}
