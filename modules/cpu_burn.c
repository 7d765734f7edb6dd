/* cpu_burn.c -- pure computation per request, almost no host calls: a benchmark workload.
 *
 * Plugin configuration, JSON:  {"iterations": 100000}
 * proxy_on_request_headers runs an xorshift32 random-number loop `iterations` times; the final
 * value goes out as the response header  x-cpu-burn: <iterations>:<hex value>  so the work can
 * neither be skipped by the compiler nor faked. With a fixed seed the value is the same for
 * every request (and on every host), which makes it a handy correctness check too.
 *
 * Host calls per request: one proxy_add_header_map_value. Everything else is Wasm code, so
 * timing this filter measures how fast the engine runs guest code, not the host boundary. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

static uint32_t iterations = 100000;
static uint32_t result; /* of the last request; deterministic, so every stream shares it */

uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_str text = {NULL, 0};
  if (plugin_config_size) pw_get_plugin_config(plugin_config_size, &text);
  int64_t n = pw_json_get_int(text, "iterations", 100000);
  free((void *)text.data);
  if (n < 0 || n > 4000000000) {
    pw_log(LOG_ERROR, "cpu_burn: iterations must be between 0 and 4000000000");
    return 0;
  }
  iterations = (uint32_t)n;
  pw_logf(LOG_INFO, "cpu_burn: %u iterations per request", iterations);
  return 1;
}

/* xorshift32 (Marsaglia 2003): three shifts and xors per round */
static uint32_t burn(uint32_t x, uint32_t rounds) {
  for (uint32_t i = 0; i < rounds; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
  }
  return x;
}

Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  result = burn(2463534242u, iterations);
  return ACTION_CONTINUE;
}

Action proxy_on_response_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  char value[32];
  size_t len = pw_format(value, sizeof value, "%u:%x", iterations, result);
  proxy_add_header_map_value(MAP_HTTP_RESPONSE_HEADERS, "x-cpu-burn", 10, value, len);
  return ACTION_CONTINUE;
}
