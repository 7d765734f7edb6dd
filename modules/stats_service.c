/* stats_service.c -- ONE module, TWO roles: an HTTP filter that reports every request, and a
 * singleton service that collects the reports from all workers and sums them up.
 *
 *   HTTP filter (root_id "stats_filter", on every worker)
 *       proxy_on_log: record "<method> <path> <status>"  --enqueue-->  shared queue "stats"
 *   WasmService (root_id "stats_service", bootstrap extension, singleton: one VM, main thread)
 *       proxy_on_configure: register the queue "stats", start a timer
 *       proxy_on_queue_ready: dequeue until EMPTY, count
 *       proxy_on_tick: log a summary, add the counts to the metrics wasmcustom.stats_service.*
 *
 * Which role a root context plays comes from its root_id in Envoy's YAML, which the module
 * reads with proxy_get_property("plugin_root_id") (the C++ SDK dispatches the same way).
 *
 * A shared queue lives in the namespace of the vm_id of the VM that registered it; any VM of
 * the process may resolve it by (vm_id, name) and enqueue. Each enqueue wakes the registrant
 * with proxy_on_queue_ready(root, queue_id), later, on the registrant's thread.
 *
 * Service configuration (JSON, optional): {"queue": "stats", "tick_ms": 1000}
 * Filter configuration  (JSON, optional): {"queue": "stats", "service_vm_id": "stats_service"} */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

/* ---------------------------------------------------------------- shared by both roles ---- */
static char queue_name[64] = "stats";
static size_t queue_name_len = 5;
static uint32_t queue_id; /* 0 = not registered / not resolved yet */

static void copy_string(pw_str s, char *to, size_t cap, size_t *len) {
  if (s.len == 0 || s.len > cap) return;
  pw_memcpy(to, s.data, s.len);
  *len = s.len;
}

/* ---------------------------------------------------------------- the service role ---- */
static uint32_t service_root;     /* root context id of the service, 0 in filter VMs */
static uint32_t tick_ms = 1000;
static uint64_t total;            /* records seen since start */
static uint32_t since_tick;       /* records since the last summary */
static uint32_t by_class[6];      /* since the last summary: [1..5] = 1xx..5xx, [0] = other */
static uint32_t requests_metric, class_metric[6];

/* distinct records since the last tick, with their counts (the first 16 are kept) */
#define MAX_DISTINCT 16
static struct {
  char text[96];
  size_t len;
  uint32_t count;
} distinct[MAX_DISTINCT];
static int n_distinct;

static void count_record(pw_str rec) {
  /* the status is the last word: "GET /a 200" */
  size_t sp = rec.len;
  while (sp > 0 && rec.data[sp - 1] != ' ') sp--;
  char c = sp < rec.len ? rec.data[sp] : '0';
  by_class[(c >= '1' && c <= '5') ? c - '0' : 0]++;
  since_tick++, total++;
  for (int i = 0; i < n_distinct; i++) {
    pw_str seen = {distinct[i].text, distinct[i].len};
    if (seen.len == rec.len && rec.len <= sizeof distinct[i].text) {
      size_t k = 0;
      while (k < rec.len && seen.data[k] == rec.data[k]) k++;
      if (k == rec.len) {
        distinct[i].count++;
        return;
      }
    }
  }
  if (n_distinct < MAX_DISTINCT && rec.len <= sizeof distinct[0].text) {
    pw_memcpy(distinct[n_distinct].text, rec.data, rec.len);
    distinct[n_distinct].len = rec.len, distinct[n_distinct].count = 1;
    n_distinct++;
  }
}

static uint32_t configure_service(uint32_t root, pw_str config) {
  pw_str v;
  if (pw_json_get(config, "queue", &v) == '"') copy_string(v, queue_name, sizeof queue_name, &queue_name_len);
  tick_ms = (uint32_t)pw_json_get_int(config, "tick_ms", 1000);
  WasmResult rc = proxy_register_shared_queue(queue_name, queue_name_len, &queue_id);
  if (rc != WASM_RESULT_OK) {
    pw_logf(LOG_ERROR, "stats_service: cannot register queue %.*s (status %u)", (int)queue_name_len, queue_name, rc);
    return 0;
  }
  static const char *classes[6] = {"stats_service.responses_other", "stats_service.responses_1xx",
                                   "stats_service.responses_2xx",   "stats_service.responses_3xx",
                                   "stats_service.responses_4xx",   "stats_service.responses_5xx"};
  proxy_define_metric(METRIC_COUNTER, "stats_service.requests", 22, &requests_metric);
  for (int i = 0; i < 6; i++) proxy_define_metric(METRIC_COUNTER, classes[i], pw_strlen(classes[i]), &class_metric[i]);
  proxy_set_tick_period_milliseconds(tick_ms);
  service_root = root;
  pw_logf(LOG_INFO, "stats_service: root ctx=%u registered queue \"%.*s\" as id %u, summary every %u ms", root,
          (int)queue_name_len, queue_name, queue_id, tick_ms);
  return 1;
}

void proxy_on_queue_ready(uint32_t root, uint32_t id) {
  for (;;) { /* one notification may stand for several records: drain until EMPTY */
    pw_str rec = {NULL, 0};
    WasmResult rc = proxy_dequeue_shared_queue(id, &rec.data, &rec.len);
    if (rc == WASM_RESULT_EMPTY) break;
    if (rc != WASM_RESULT_OK) {
      pw_logf(LOG_WARN, "stats_service: dequeue from queue %u failed with status %u", id, rc);
      break;
    }
    pw_logf(LOG_DEBUG, "stats_service: dequeued \"%S\"", rec);
    count_record(rec);
    free((void *)rec.data);
  }
}

void proxy_on_tick(uint32_t root) {
  if (root != service_root || since_tick == 0) return; /* quiet when nothing happened */
  static char line[1024];
  pw_buf b = {line, 0, sizeof line};
  b.len = pw_format(line, sizeof line, "stats_service: %u requests in the last interval (%llu total):", since_tick,
                    total);
  for (int i = 0; i < n_distinct; i++) {
    char item[128];
    pw_buf_put(&b, item, pw_format(item, sizeof item, "%s%.*s x%u", i ? ", " : " ", (int)distinct[i].len,
                                   distinct[i].text, distinct[i].count));
  }
  proxy_log(LOG_INFO, line, b.len);
  proxy_increment_metric(requests_metric, since_tick);
  for (int i = 0; i < 6; i++) {
    if (by_class[i]) proxy_increment_metric(class_metric[i], by_class[i]); /* counters: delta must be > 0 */
    by_class[i] = 0;
  }
  since_tick = 0, n_distinct = 0;
}

/* ---------------------------------------------------------------- the filter role ---- */
static char service_vm_id[64] = "stats_service";
static size_t service_vm_id_len = 13;

static uint32_t configure_filter(uint32_t root, pw_str config) {
  pw_str v;
  if (pw_json_get(config, "queue", &v) == '"') copy_string(v, queue_name, sizeof queue_name, &queue_name_len);
  if (pw_json_get(config, "service_vm_id", &v) == '"')
    copy_string(v, service_vm_id, sizeof service_vm_id, &service_vm_id_len);
  pw_logf(LOG_INFO, "stats_filter: root ctx=%u reports to queue \"%.*s\" of vm \"%.*s\"", root, (int)queue_name_len,
          queue_name, (int)service_vm_id_len, service_vm_id);
  return 1;
}

/* Find the service's queue. Done late (at the first request), not in proxy_on_configure: the
 * service may not have registered it yet when the filter is configured. */
static WasmResult resolve_queue(void) {
  WasmResult rc = proxy_resolve_shared_queue(service_vm_id, service_vm_id_len, queue_name, queue_name_len, &queue_id);
  if (rc != WASM_RESULT_OK) queue_id = 0;
  return rc;
}

/* proxy_on_log runs once per finished request, with the request and response headers still
 * readable: the best place to report. */
void proxy_on_log(uint32_t ctx) {
  if (service_root) return; /* the service has no streams, but be safe */
  pw_str method = {NULL, 0}, path = {NULL, 0}, status = {NULL, 0};
  pw_get_header(MAP_HTTP_REQUEST_HEADERS, ":method", &method);
  pw_get_header(MAP_HTTP_REQUEST_HEADERS, ":path", &path);
  int have_status = pw_get_header(MAP_HTTP_RESPONSE_HEADERS, ":status", &status) == WASM_RESULT_OK;
  char record[256];
  size_t len = pw_format(record, sizeof record, "%S %S %S", method, path, have_status ? status : pw_cstr("-"));
  WasmResult rc = WASM_RESULT_NOT_FOUND;
  if (queue_id || resolve_queue() == WASM_RESULT_OK) {
    rc = proxy_enqueue_shared_queue(queue_id, record, len);
    if (rc == WASM_RESULT_NOT_FOUND && resolve_queue() == WASM_RESULT_OK) /* the service came back */
      rc = proxy_enqueue_shared_queue(queue_id, record, len);
  }
  if (rc == WASM_RESULT_OK) pw_logf(LOG_DEBUG, "stats_filter: ctx=%u enqueued \"%.*s\"", ctx, (int)len, record);
  else pw_logf(LOG_WARN, "stats_filter: ctx=%u could not enqueue \"%.*s\" (status %u)", ctx, (int)len, record, rc);
  free((void *)method.data), free((void *)path.data), free((void *)status.data);
}

/* ---------------------------------------------------------------- choosing the role ---- */
uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) {
  pw_str root_id = {NULL, 0}, config = {NULL, 0};
  if (pw_get_property("plugin_root_id", &root_id) != WASM_RESULT_OK) {
    pw_log(LOG_ERROR, "stats_service: cannot read the property plugin_root_id");
    return 0;
  }
  if (plugin_config_size) pw_get_plugin_config(plugin_config_size, &config);
  uint32_t ok;
  if (pw_str_eq(root_id, "stats_service")) ok = configure_service(root, config);
  else if (pw_str_eq(root_id, "stats_filter")) ok = configure_filter(root, config);
  else {
    pw_logf(LOG_ERROR, "stats_service: unknown root_id \"%S\" (use stats_service or stats_filter)", root_id);
    ok = 0;
  }
  free((void *)root_id.data), free((void *)config.data);
  return ok;
}
