/* body_rewrite.c -- buffer a whole body, then rewrite it: replace every occurrence of a word.
 *
 * Plugin configuration, JSON:
 *     {"find": "hello", "replace": "howdy", "request": true, "response": true}
 * "find" is required (non-empty); "replace" defaults to ""; "request" / "response" choose which
 * bodies are rewritten (both default to true).
 *
 * How a filter sees a body: in pieces. proxy_on_*_body(ctx, size, end_of_stream) is called for
 * every piece. Returning ACTION_PAUSE (1) from a body callback means "keep buffering": the host
 * holds the data and calls again when more arrives, with the size of everything buffered so
 * far. When end_of_stream is 1 the whole body is there: read it with proxy_get_buffer_bytes,
 * write the new one with proxy_set_buffer_bytes, return ACTION_CONTINUE.
 *
 * The new body may be longer or shorter, so the content-length header would be wrong. Headers
 * travel before the body, so it has to be removed already in proxy_on_*_headers (as real
 * plugins do); Envoy then sends the body chunked (HTTP/1.1) or just ends the stream (HTTP/2).
 * Envoy buffers at most the connection's buffer limit (1 MiB by default): above that the
 * request gets 413, the response 500. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

static pw_str config, find, replace;
static int on_request = 1, on_response = 1;

static int flag(pw_str json, const char *key, int fallback) {
  pw_str v;
  char kind = pw_json_get(json, key, &v);
  return kind == 't' ? 1 : kind == 'f' ? 0 : fallback;
}

uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_str text, f = {NULL, 0}, r = {NULL, 0};
  if (pw_get_plugin_config(plugin_config_size, &text) != WASM_RESULT_OK ||
      pw_json_get(text, "find", &f) != '"' || f.len == 0) {
    pw_logf(LOG_ERROR, "body_rewrite: configuration needs {\"find\": \"<non-empty word>\", ...}, got: %S", text);
    return 0;
  }
  pw_json_get(text, "replace", &r);
  free((void *)config.data);
  config = text, find = f, replace = r;
  on_request = flag(text, "request", 1);
  on_response = flag(text, "response", 1);
  pw_logf(LOG_INFO, "body_rewrite: replacing \"%S\" with \"%S\" in%s%s bodies", find, replace,
          on_request ? " request" : "", on_response ? " response" : "");
  return 1;
}

/* 1 if `find` occurs in the body at position i */
static int match_at(pw_str body, size_t i) {
  if (i + find.len > body.len) return 0;
  for (size_t k = 0; k < find.len; k++)
    if (body.data[i + k] != find.data[k]) return 0;
  return 1;
}

/* The body with every `find` replaced by `replace`, in a new malloc'd block (*out_len set). */
static char *rewrite(pw_str body, size_t *out_len) {
  size_t count = 0; /* first pass: how many matches, to know the new length */
  for (size_t i = 0; i < body.len;) {
    if (match_at(body, i)) count++, i += find.len;
    else i++;
  }
  size_t len = body.len - count * find.len + count * replace.len;
  char *out = (char *)malloc(len), *w = out;
  if (!out) return NULL;
  for (size_t i = 0; i < body.len;) { /* second pass: copy, swapping the matches */
    if (match_at(body, i)) {
      pw_memcpy(w, replace.data, replace.len);
      w += replace.len, i += find.len;
    } else {
      *w++ = body.data[i++];
    }
  }
  *out_len = len;
  return out;
}

/* shared by request and response: wait for the whole body, then swap it */
static Action on_body(BufferType buffer, uint32_t ctx, size_t body_size, uint32_t end_of_stream) {
  if (!end_of_stream) return ACTION_PAUSE; /* not complete yet: let the host buffer it */
  pw_str body;
  if (pw_get_buffer(buffer, 0, body_size, &body) != WASM_RESULT_OK) return ACTION_CONTINUE;
  size_t new_len = 0;
  char *new_body = rewrite(body, &new_len);
  if (new_body) {
    /* start=0, size=body_size: replace everything the host has buffered */
    WasmResult rc = proxy_set_buffer_bytes(buffer, 0, body_size, new_body, new_len);
    pw_logf(LOG_INFO, "body_rewrite: ctx=%u %s body %u -> %u bytes (status %u)", ctx,
            buffer == BUFFER_HTTP_REQUEST_BODY ? "request" : "response", body_size, new_len, rc);
    free(new_body);
  }
  free((void *)body.data);
  return ACTION_CONTINUE;
}

Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  if (on_request && !end_of_stream) pw_remove_header(MAP_HTTP_REQUEST_HEADERS, "content-length");
  return ACTION_CONTINUE;
}
Action proxy_on_request_body(uint32_t ctx, size_t body_size, uint32_t end_of_stream) {
  return on_request ? on_body(BUFFER_HTTP_REQUEST_BODY, ctx, body_size, end_of_stream) : ACTION_CONTINUE;
}
Action proxy_on_response_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  if (on_response && !end_of_stream) pw_remove_header(MAP_HTTP_RESPONSE_HEADERS, "content-length");
  return ACTION_CONTINUE;
}
Action proxy_on_response_body(uint32_t ctx, size_t body_size, uint32_t end_of_stream) {
  return on_response ? on_body(BUFFER_HTTP_RESPONSE_BODY, ctx, body_size, end_of_stream) : ACTION_CONTINUE;
}
