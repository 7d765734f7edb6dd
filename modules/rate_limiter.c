/* rate_limiter.c -- one token bucket for ALL workers, kept in shared data, updated with CAS.
 *
 * Plugin configuration, JSON (the same knobs as Envoy's native local_ratelimit filter):
 *     {"max_tokens": 5, "tokens_per_fill": 1, "fill_interval_ms": 1000}
 * Every request takes one token; with no token left the plugin answers 429 itself
 * (proxy_send_local_response) and the request never reaches the upstream. Every
 * fill_interval_ms, tokens_per_fill tokens come back (never more than max_tokens).
 *
 * Why shared data? Envoy runs one copy of the VM per worker thread, and the copies share no
 * memory: a counter in a C global would give every worker its own bucket (N workers = N times
 * the limit). proxy_get_shared_data / proxy_set_shared_data is a key/value store that all VMs
 * with the same vm_id share, process-wide.
 *
 * Why CAS? Two workers may read the bucket at the same moment, both take "the last token" and
 * both write. So every read returns a version number (cas) and the write passes it back: if the
 * value changed in between, the host refuses with WASM_RESULT_CAS_MISMATCH (8) and we start
 * over from a fresh read. That loop is the whole trick.
 *
 * Stats (Envoy shows them as wasmcustom.<name>): rate_limiter.allowed, rate_limiter.denied,
 * rate_limiter.cas_retries. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

static const char KEY[] = "rate_limiter.bucket"; /* the shared-data key */
#define KEY_LEN (sizeof KEY - 1)

static uint64_t max_tokens = 5, tokens_per_fill = 1, fill_interval_ms = 1000;
static uint32_t allowed_metric, denied_metric, retries_metric;

/* What is stored under KEY: 16 raw bytes. */
typedef struct {
  uint64_t tokens;
  uint64_t last_fill_ns; /* time of the last refill, nanoseconds since the epoch */
} Bucket;

static uint64_t now_ns(void) {
  uint64_t t = 0;
  proxy_get_current_time_nanoseconds(&t);
  return t;
}

/* Read the bucket. Returns the status of proxy_get_shared_data; on OK *cas is its version. */
static WasmResult read_bucket(Bucket *b, uint32_t *cas) {
  pw_str value = {NULL, 0};
  *cas = 0;
  WasmResult rc = proxy_get_shared_data(KEY, KEY_LEN, &value.data, &value.len, cas);
  if (rc == WASM_RESULT_OK) {
    if (value.len == sizeof *b) pw_memcpy(b, value.data, sizeof *b);
    else b->tokens = max_tokens, b->last_fill_ns = now_ns(); /* not ours: start over */
    free((void *)value.data);
  }
  return rc;
}

/* Add the tokens earned since the last fill. Returns 1 if the bucket changed. */
static int refill(Bucket *b, uint64_t now) {
  uint64_t interval_ns = fill_interval_ms * 1000000u;
  if (interval_ns == 0 || tokens_per_fill == 0 || now < b->last_fill_ns + interval_ns) return 0;
  uint64_t fills = (now - b->last_fill_ns) / interval_ns;
  b->last_fill_ns += fills * interval_ns;
  uint64_t room = max_tokens - (b->tokens < max_tokens ? b->tokens : max_tokens);
  b->tokens += fills * tokens_per_fill < room ? fills * tokens_per_fill : room;
  return 1;
}

/* Take one token. Returns 1 = allowed, 0 = no token left. */
static int take_token(void) {
  for (int attempt = 0; attempt < 20; attempt++) {
    Bucket b;
    uint32_t cas;
    if (read_bucket(&b, &cas) != WASM_RESULT_OK) { /* nobody created it yet */
      b.tokens = max_tokens, b.last_fill_ns = now_ns();
      cas = 0;
    }
    int changed = refill(&b, now_ns());
    int allowed = b.tokens > 0;
    if (allowed) b.tokens--, changed = 1;
    if (!changed) return allowed; /* nothing to write back */
    WasmResult rc = proxy_set_shared_data(KEY, KEY_LEN, (const char *)&b, sizeof b, cas);
    if (rc == WASM_RESULT_OK) return allowed;
    if (rc != WASM_RESULT_CAS_MISMATCH) {
      pw_logf(LOG_ERROR, "rate_limiter: proxy_set_shared_data failed with status %u, letting the request pass", rc);
      return 1; /* fail open */
    }
    /* another worker wrote the bucket after we read it: read it again and redo the math */
    proxy_increment_metric(retries_metric, 1);
    pw_logf(LOG_DEBUG, "rate_limiter: CAS mismatch (cas %u), retrying", cas);
  }
  pw_log(LOG_WARN, "rate_limiter: too much contention on the bucket, letting the request pass");
  return 1;
}

uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_str text = {NULL, 0};
  if (plugin_config_size > 0 && pw_get_plugin_config(plugin_config_size, &text) == WASM_RESULT_OK) {
    int64_t max = pw_json_get_int(text, "max_tokens", 5), per_fill = pw_json_get_int(text, "tokens_per_fill", 1),
            interval = pw_json_get_int(text, "fill_interval_ms", 1000);
    free((void *)text.data);
    if (max < 1 || per_fill < 0 || interval < 0) {
      pw_log(LOG_ERROR, "rate_limiter: need max_tokens >= 1, tokens_per_fill >= 0, fill_interval_ms >= 0");
      return 0;
    }
    max_tokens = (uint64_t)max, tokens_per_fill = (uint64_t)per_fill, fill_interval_ms = (uint64_t)interval;
  }
  proxy_define_metric(METRIC_COUNTER, "rate_limiter.allowed", 20, &allowed_metric);
  proxy_define_metric(METRIC_COUNTER, "rate_limiter.denied", 19, &denied_metric);
  proxy_define_metric(METRIC_COUNTER, "rate_limiter.cas_retries", 24, &retries_metric);
  /* Create the full bucket once. Envoy configures the plugin on the main thread before any
   * worker starts, so later configurations (one per worker) find it and leave it alone. */
  Bucket b;
  uint32_t cas;
  if (read_bucket(&b, &cas) == WASM_RESULT_NOT_FOUND) {
    b.tokens = max_tokens, b.last_fill_ns = now_ns();
    proxy_set_shared_data(KEY, KEY_LEN, (const char *)&b, sizeof b, 0);
    pw_logf(LOG_INFO, "rate_limiter: bucket created with %llu tokens", max_tokens);
  }
  pw_logf(LOG_INFO, "rate_limiter: root ctx=%u max_tokens=%llu tokens_per_fill=%llu fill_interval_ms=%llu", root,
          max_tokens, tokens_per_fill, fill_interval_ms);
  return 1;
}

Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  if (take_token()) {
    proxy_increment_metric(allowed_metric, 1);
    return ACTION_CONTINUE;
  }
  proxy_increment_metric(denied_metric, 1);
  pw_header headers[] = {PW_HEADER("x-rate-limited-by", "wasm")};
  pw_send_response(429, "wasm_rate_limited", "rate limited by wasm\n", headers, 1);
  return ACTION_PAUSE; /* the local reply ends the stream; nothing more to do here */
}
