/* http_auth.c -- ask another service before letting a request through (external auth).
 *
 * For every request:
 *   1. proxy_on_request_headers sends GET /auth to the Envoy cluster "auth" with proxy_http_call,
 *      forwarding the request's authorization header, and returns ACTION_PAUSE: the request
 *      waits inside Envoy (nothing goes upstream yet).
 *   2. Later the answer arrives in proxy_on_http_call_response(root, token, ...) -- on the ROOT
 *      context, not on the waiting stream. The token tells us which stream asked; then
 *      proxy_set_effective_context(stream) makes the next hostcalls act on that stream:
 *        auth said 200 -> add "x-auth: ok" to the request, proxy_continue_stream(request);
 *        anything else -> answer 403 ourselves (proxy_send_local_response);
 *        call failed   -> 503 (num_headers == 0: reset, timeout, no healthy upstream).
 *
 * Plugin configuration, JSON, all optional:
 *     {"cluster": "auth", "path": "/auth", "authority": "auth", "timeout_ms": 1000} */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

static char cluster[64] = "auth", path[128] = "/auth", authority[128] = "auth";
static uint32_t timeout_ms = 1000;

/* Which stream is waiting for which call. A small table: a real plugin would use a hash map. */
#define MAX_WAITING 256
static struct {
  uint32_t token, ctx;
} waiting[MAX_WAITING];

static int remember(uint32_t token, uint32_t ctx) {
  for (int i = 0; i < MAX_WAITING; i++)
    if (waiting[i].ctx == 0) {
      waiting[i].token = token, waiting[i].ctx = ctx;
      return 1;
    }
  return 0;
}
/* the stream waiting for `token` (0 if none), forgetting it */
static uint32_t take_waiting(uint32_t token) {
  for (int i = 0; i < MAX_WAITING; i++)
    if (waiting[i].ctx && waiting[i].token == token) {
      uint32_t ctx = waiting[i].ctx;
      waiting[i].ctx = 0;
      return ctx;
    }
  return 0;
}

static void copy_cstring(pw_str s, char *to, size_t cap) {
  if (s.len == 0 || s.len >= cap) return;
  pw_memcpy(to, s.data, s.len);
  to[s.len] = 0;
}

uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_str text = {NULL, 0}, v;
  if (plugin_config_size) pw_get_plugin_config(plugin_config_size, &text);
  if (pw_json_get(text, "cluster", &v) == '"') copy_cstring(v, cluster, sizeof cluster);
  if (pw_json_get(text, "path", &v) == '"') copy_cstring(v, path, sizeof path);
  if (pw_json_get(text, "authority", &v) == '"') copy_cstring(v, authority, sizeof authority);
  timeout_ms = (uint32_t)pw_json_get_int(text, "timeout_ms", 1000);
  free((void *)text.data);
  pw_logf(LOG_INFO, "http_auth: root ctx=%u asks cluster %s: GET %s (authority %s, timeout %u ms)", root, cluster, path,
          authority, timeout_ms);
  return 1;
}

Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  pw_str auth = {NULL, 0};
  int have_auth = pw_get_header(MAP_HTTP_REQUEST_HEADERS, "authorization", &auth) == WASM_RESULT_OK;
  /* the callout's headers, in the pairs format; :method, :path and :authority are required */
  pw_header headers[4] = {
      {":method", 7, "GET", 3},
      {":path", 5, path, pw_strlen(path)},
      {":authority", 10, authority, pw_strlen(authority)},
      {"authorization", 13, auth.data, auth.len},
  };
  static char pairs[2048];
  size_t pairs_len = pw_pairs_encode(headers, have_auth ? 4 : 3, pairs, sizeof pairs);
  uint32_t token = 0;
  WasmResult rc = proxy_http_call(cluster, pw_strlen(cluster), pairs, pairs_len, NULL, 0, NULL, 0, timeout_ms, &token);
  free((void *)auth.data);
  if (rc != WASM_RESULT_OK || !remember(token, ctx)) {
    pw_logf(LOG_WARN, "http_auth: ctx=%u proxy_http_call failed with status %u", ctx, rc);
    pw_send_response(503, "wasm_auth_call_failed", "auth service unavailable\n", NULL, 0);
    return ACTION_PAUSE;
  }
  pw_logf(LOG_DEBUG, "http_auth: ctx=%u waits for call token=%u", ctx, token);
  return ACTION_PAUSE; /* hold the request until the answer comes */
}

void proxy_on_http_call_response(uint32_t root, uint32_t token, uint32_t num_headers, size_t body_size,
                                 uint32_t num_trailers) {
  uint32_t ctx = take_waiting(token);
  if (!ctx) return; /* the client went away meanwhile (see proxy_on_delete) */
  /* The answer's headers (map 6) and body (buffer 4) are readable only inside this callback. */
  pw_str status = {NULL, 0};
  if (num_headers > 0) pw_get_header(MAP_HTTP_CALL_RESPONSE_HEADERS, ":status", &status);
  int allowed = pw_str_eq(status, "200");
  pw_logf(LOG_INFO, "http_auth: token=%u for ctx=%u: auth answered %S (%u headers, %u body bytes) -> %s", token, ctx,
          num_headers ? status : pw_cstr("nothing, the call failed"), num_headers, body_size,
          allowed ? "allow" : "deny");
  free((void *)status.data);

  /* from here on, hostcalls act on the waiting stream */
  if (proxy_set_effective_context(ctx) != WASM_RESULT_OK) return;
  if (num_headers == 0) {
    pw_send_response(503, "wasm_auth_unavailable", "auth service unavailable\n", NULL, 0);
  } else if (allowed) {
    pw_add_header(MAP_HTTP_REQUEST_HEADERS, "x-auth", "ok"); /* the request is still paused: writable */
    proxy_continue_stream(STREAM_HTTP_REQUEST);
  } else {
    pw_header extra[] = {PW_HEADER("x-denied-by", "wasm-http-auth")};
    pw_send_response(403, "wasm_auth_denied", "denied by http_auth\n", extra, 1);
  }
}

void proxy_on_delete(uint32_t ctx) { /* stop waiting for a stream that is gone */
  for (int i = 0; i < MAX_WAITING; i++)
    if (waiting[i].ctx == ctx) waiting[i].ctx = 0;
}
