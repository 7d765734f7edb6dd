/* proxy_wasm.h -- wasmlab's own small C header for writing Proxy-Wasm plugins (ABI 0.2.1).
 *
 * No SDK and no libc: a module is one .c file that includes this header and is compiled with
 *     zig cc --target=wasm32-freestanding -nostdlib -Os -Wl,--no-entry ...   (wasmlab build-modules)
 *
 * What is in here, top to bottom:
 *   1. IMPORT / EXPORT macros (how C names become Wasm import and export names)
 *   2. the ABI's numbers: status codes, log levels, map / buffer / stream / metric types
 *   3. every host function ("hostcall") Envoy offers to an ABI 0.2.1 module, module "env"
 *   4. every callback the host may call, declared with its exact signature. A module just
 *      DEFINES the ones it wants (same name); the declaration here exports it, and the
 *      compiler checks the signature for you. Callbacks you do not define are not exported,
 *      and the host then uses its default (Continue / true).
 *   5. small helpers: malloc/free, strings, logging with a tiny printf, headers, buffers,
 *      properties, the "pairs" format, a minimal JSON reader, integer <-> text.
 *
 * Two rules of the ABI worth remembering while reading the helpers:
 *   - Data the HOST returns (a header value, a body, the configuration...) is written into
 *     memory the host obtains by calling OUR exported `malloc` from inside the hostcall.
 *     The bytes are NOT NUL-terminated: you always get (pointer, length). Give the memory
 *     back with `free` when you are done. An empty result is (NULL, 0) and allocates nothing.
 *   - Data WE pass to the host is always (pointer, length) into our own linear memory; the
 *     host copies it during the call.
 *
 * Only the host functions a module actually calls end up as imports in its .wasm, so declaring
 * all of them here costs nothing.
 */
#ifndef WASMLAB_PROXY_WASM_H
#define WASMLAB_PROXY_WASM_H

#include <stdarg.h> /* these three come with the compiler, not with a libc */
#include <stddef.h>
#include <stdint.h>

/* ============================================================================================
 * 1. Import / export macros
 * ============================================================================================ */

/* A host function: module "env", field `name`. */
#define IMPORT(name) __attribute__((import_module("env"), import_name(name)))
/* Export a C function under the given Wasm name, e.g.  EXPORT("free") void free(void *p) {...} */
#define EXPORT(name) __attribute__((export_name(name)))

/* Every module must export one empty function whose NAME tells the host the ABI version.
 * Put `PROXY_ABI_VERSION_0_2_1;` once in your module (at file level). */
#define PROXY_ABI_VERSION_0_2_1 \
  EXPORT("proxy_abi_version_0_2_1") void proxy_abi_version_0_2_1(void) {} \
  typedef int pw_abi_marker_defined_ /* swallows the ';' after the macro */

/* ============================================================================================
 * 2. The numbers of the ABI
 * ============================================================================================ */

/* Status returned by every hostcall (WasmResult). */
typedef uint32_t WasmResult;
enum {
  WASM_RESULT_OK = 0,
  WASM_RESULT_NOT_FOUND = 1,              /* no such header / key / queue / buffer right now */
  WASM_RESULT_BAD_ARGUMENT = 2,           /* e.g. map not available in this callback, unknown enum */
  WASM_RESULT_SERIALIZATION_FAILURE = 3,
  WASM_RESULT_PARSE_FAILURE = 4,
  WASM_RESULT_BAD_EXPRESSION = 5,
  WASM_RESULT_INVALID_MEMORY_ACCESS = 6,  /* a (pointer, length) outside our memory; malloc failed */
  WASM_RESULT_EMPTY = 7,                  /* dequeue from an empty shared queue */
  WASM_RESULT_CAS_MISMATCH = 8,           /* shared data changed since we read it: read again */
  WASM_RESULT_RESULT_MISMATCH = 9,
  WASM_RESULT_INTERNAL_FAILURE = 10,
  WASM_RESULT_BROKEN_CONNECTION = 11,
  WASM_RESULT_UNIMPLEMENTED = 12,
};

/* proxy_log levels. Envoy logs them on its "wasm" logger as trace/debug/info/warning/error/critical. */
typedef enum { LOG_TRACE = 0, LOG_DEBUG = 1, LOG_INFO = 2, LOG_WARN = 3, LOG_ERROR = 4, LOG_CRITICAL = 5 } LogLevel;

/* What a header/body callback tells the host.  0 = go on, 1 = stop here for now.
 * From on_*_headers, PAUSE stops the whole stream (bodies are not delivered either) until
 * proxy_continue_stream(); from on_*_body it means "keep buffering, call me again with more". */
typedef enum { ACTION_CONTINUE = 0, ACTION_PAUSE = 1 } Action;

/* Header-like maps (proxy_*_header_map_*). */
typedef enum {
  MAP_HTTP_REQUEST_HEADERS = 0,
  MAP_HTTP_REQUEST_TRAILERS = 1,
  MAP_HTTP_RESPONSE_HEADERS = 2,
  MAP_HTTP_RESPONSE_TRAILERS = 3,
  MAP_GRPC_RECEIVE_INITIAL_METADATA = 4,
  MAP_GRPC_RECEIVE_TRAILING_METADATA = 5,
  MAP_HTTP_CALL_RESPONSE_HEADERS = 6,   /* only inside proxy_on_http_call_response */
  MAP_HTTP_CALL_RESPONSE_TRAILERS = 7,
} MapType;

/* Byte buffers (proxy_get_buffer_bytes / proxy_set_buffer_bytes). */
typedef enum {
  BUFFER_HTTP_REQUEST_BODY = 0,
  BUFFER_HTTP_RESPONSE_BODY = 1,
  BUFFER_DOWNSTREAM_DATA = 2,           /* TCP: client -> proxy */
  BUFFER_UPSTREAM_DATA = 3,             /* TCP: upstream -> proxy */
  BUFFER_HTTP_CALL_RESPONSE_BODY = 4,
  BUFFER_GRPC_RECEIVE_BUFFER = 5,
  BUFFER_VM_CONFIGURATION = 6,          /* vm_config.configuration */
  BUFFER_PLUGIN_CONFIGURATION = 7,      /* config.configuration; readable in on_configure */
  BUFFER_CALL_DATA = 8,                 /* arguments of proxy_on_foreign_function */
} BufferType;

/* proxy_continue_stream / proxy_close_stream. */
typedef enum { STREAM_HTTP_REQUEST = 0, STREAM_HTTP_RESPONSE = 1, STREAM_DOWNSTREAM = 2, STREAM_UPSTREAM = 3 } StreamType;

/* Who closed a TCP connection (proxy_on_*_connection_close). */
typedef enum { PEER_UNKNOWN = 0, PEER_LOCAL = 1, PEER_REMOTE = 2 } PeerType;

/* proxy_define_metric. Envoy shows them under the prefix "wasmcustom." in /stats. */
typedef enum { METRIC_COUNTER = 0, METRIC_GAUGE = 1, METRIC_HISTOGRAM = 2 } MetricType;

/* The last argument of proxy_send_local_response: a gRPC status, or this for "none". */
#define GRPC_STATUS_NONE (-1)

/* ============================================================================================
 * 3. Host functions (imports from module "env"), ABI 0.2.1 as Envoy implements it.
 *    Out-parameters (`*_out`) are written by the host. Lengths are 32-bit on wasm32.
 * ============================================================================================ */

/* ---- logging, time, timers ---- */
IMPORT("proxy_log") WasmResult proxy_log(LogLevel level, const char *msg, size_t msg_len);
IMPORT("proxy_get_log_level") WasmResult proxy_get_log_level(uint32_t *level_out);
IMPORT("proxy_get_current_time_nanoseconds") WasmResult proxy_get_current_time_nanoseconds(uint64_t *nanos_out);
/* Arms the timer of the current ROOT context: proxy_on_tick(root_id) every `ms` (0 = stop). */
IMPORT("proxy_set_tick_period_milliseconds") WasmResult proxy_set_tick_period_milliseconds(uint32_t ms);

/* ---- contexts ---- */
/* Make later hostcalls in this callback act on another context (e.g. the stream that is
 * waiting for an HTTP call, inside proxy_on_http_call_response which runs on the root). */
IMPORT("proxy_set_effective_context") WasmResult proxy_set_effective_context(uint32_t context_id);
/* A root context whose proxy_on_done returned 0 calls this when it has really finished. */
IMPORT("proxy_done") WasmResult proxy_done(void);
/* Status of the last HTTP call / gRPC stream: code, and a message the host allocates. */
IMPORT("proxy_get_status") WasmResult proxy_get_status(uint32_t *code_out, const char **msg_out, size_t *msg_len_out);
/* Envoy extras by name: "clear_route_cache", "compress", "uncompress", "declare_property", ... */
IMPORT("proxy_call_foreign_function") WasmResult proxy_call_foreign_function(
    const char *name, size_t name_len, const char *args, size_t args_len, const char **result_out, size_t *result_len_out);

/* ---- properties (request.path, source.address, plugin_root_id, ...) ---- */
/* `path` = segments joined by a NUL byte, no trailing NUL. See pw_get_property() below. */
IMPORT("proxy_get_property") WasmResult proxy_get_property(
    const char *path, size_t path_len, const char **value_out, size_t *value_len_out);
IMPORT("proxy_set_property") WasmResult proxy_set_property(
    const char *path, size_t path_len, const char *value, size_t value_len);

/* ---- HTTP header / trailer maps (see MapType) ---- */
IMPORT("proxy_get_header_map_value") WasmResult proxy_get_header_map_value(
    MapType map, const char *key, size_t key_len, const char **value_out, size_t *value_len_out);
IMPORT("proxy_add_header_map_value") WasmResult proxy_add_header_map_value(
    MapType map, const char *key, size_t key_len, const char *value, size_t value_len);
IMPORT("proxy_replace_header_map_value") WasmResult proxy_replace_header_map_value(
    MapType map, const char *key, size_t key_len, const char *value, size_t value_len);
IMPORT("proxy_remove_header_map_value") WasmResult proxy_remove_header_map_value(
    MapType map, const char *key, size_t key_len);
/* The whole map in the "pairs" format (see pw_pairs_get). */
IMPORT("proxy_get_header_map_pairs") WasmResult proxy_get_header_map_pairs(
    MapType map, const char **pairs_out, size_t *pairs_len_out);
IMPORT("proxy_set_header_map_pairs") WasmResult proxy_set_header_map_pairs(
    MapType map, const char *pairs, size_t pairs_len);
/* Envoy answers with the map's byte size (sum of key and value lengths). */
IMPORT("proxy_get_header_map_size") WasmResult proxy_get_header_map_size(MapType map, size_t *size_out);

/* ---- buffers (see BufferType) ---- */
/* Copies up to max_size bytes starting at `start`. */
IMPORT("proxy_get_buffer_bytes") WasmResult proxy_get_buffer_bytes(
    BufferType buffer, size_t start, size_t max_size, const char **data_out, size_t *data_len_out);
/* Envoy: start=0 -> drop the first `size` bytes, insert `data` in front (start=0, size=all
 * replaces everything); start >= length -> append. Anything else -> BAD_ARGUMENT. */
IMPORT("proxy_set_buffer_bytes") WasmResult proxy_set_buffer_bytes(
    BufferType buffer, size_t start, size_t size, const char *data, size_t data_len);
IMPORT("proxy_get_buffer_status") WasmResult proxy_get_buffer_status(
    BufferType buffer, size_t *length_out, uint32_t *flags_out);

/* ---- stream control (the host acts after the current callback returns) ---- */
IMPORT("proxy_continue_stream") WasmResult proxy_continue_stream(StreamType stream);
IMPORT("proxy_close_stream") WasmResult proxy_close_stream(StreamType stream);
/* Answer the client ourselves. `details` shows up as %RESPONSE_CODE_DETAILS% in access logs;
 * `headers` is in the pairs format (may be NULL, 0). grpc_status: GRPC_STATUS_NONE. */
IMPORT("proxy_send_local_response") WasmResult proxy_send_local_response(
    uint32_t status_code, const char *details, size_t details_len, const char *body, size_t body_len,
    const char *headers, size_t headers_len, int32_t grpc_status);

/* ---- HTTP callouts: the answer arrives later in proxy_on_http_call_response(root, token, ...) ---- */
/* `cluster` is an Envoy cluster name; headers (pairs) must contain :method, :path, :authority. */
IMPORT("proxy_http_call") WasmResult proxy_http_call(
    const char *cluster, size_t cluster_len, const char *headers, size_t headers_len, const char *body,
    size_t body_len, const char *trailers, size_t trailers_len, uint32_t timeout_ms, uint32_t *token_out);

/* ---- gRPC callouts ---- */
IMPORT("proxy_grpc_call") WasmResult proxy_grpc_call(
    const char *service, size_t service_len, const char *service_name, size_t service_name_len,
    const char *method, size_t method_len, const char *initial_metadata, size_t initial_metadata_len,
    const char *message, size_t message_len, uint32_t timeout_ms, uint32_t *token_out);
IMPORT("proxy_grpc_stream") WasmResult proxy_grpc_stream(
    const char *service, size_t service_len, const char *service_name, size_t service_name_len,
    const char *method, size_t method_len, const char *initial_metadata, size_t initial_metadata_len,
    uint32_t *token_out);
IMPORT("proxy_grpc_send") WasmResult proxy_grpc_send(uint32_t token, const char *message, size_t message_len, uint32_t end_stream);
IMPORT("proxy_grpc_cancel") WasmResult proxy_grpc_cancel(uint32_t token);
IMPORT("proxy_grpc_close") WasmResult proxy_grpc_close(uint32_t token);

/* ---- shared data: one key/value store per vm_id, shared by all workers ---- */
/* `cas` is a version number. set with cas=0 writes unconditionally; with the cas you read it
 * fails with WASM_RESULT_CAS_MISMATCH if someone else wrote the key in between. */
IMPORT("proxy_get_shared_data") WasmResult proxy_get_shared_data(
    const char *key, size_t key_len, const char **value_out, size_t *value_len_out, uint32_t *cas_out);
IMPORT("proxy_set_shared_data") WasmResult proxy_set_shared_data(
    const char *key, size_t key_len, const char *value, size_t value_len, uint32_t cas);

/* ---- shared queues: many producers (any worker), one consumer (who registered) ---- */
IMPORT("proxy_register_shared_queue") WasmResult proxy_register_shared_queue(
    const char *name, size_t name_len, uint32_t *queue_id_out);
IMPORT("proxy_resolve_shared_queue") WasmResult proxy_resolve_shared_queue(
    const char *vm_id, size_t vm_id_len, const char *name, size_t name_len, uint32_t *queue_id_out);
IMPORT("proxy_enqueue_shared_queue") WasmResult proxy_enqueue_shared_queue(
    uint32_t queue_id, const char *value, size_t value_len);
IMPORT("proxy_dequeue_shared_queue") WasmResult proxy_dequeue_shared_queue(
    uint32_t queue_id, const char **value_out, size_t *value_len_out);

/* ---- metrics ---- */
IMPORT("proxy_define_metric") WasmResult proxy_define_metric(
    MetricType type, const char *name, size_t name_len, uint32_t *metric_id_out);
IMPORT("proxy_increment_metric") WasmResult proxy_increment_metric(uint32_t metric_id, int64_t delta);
IMPORT("proxy_record_metric") WasmResult proxy_record_metric(uint32_t metric_id, uint64_t value);
IMPORT("proxy_get_metric") WasmResult proxy_get_metric(uint32_t metric_id, uint64_t *value_out);

/* ============================================================================================
 * 4. Callbacks (exports). Define any of these in your module with exactly this signature.
 *    "ctx" is a context id: root (plugin) contexts and stream contexts share one counter per VM.
 * ============================================================================================ */
#define CALLBACK(name) __attribute__((export_name(#name)))

/* lifecycle of contexts; parent 0 = a new root context, else a stream of root `parent` */
CALLBACK(proxy_on_context_create) void proxy_on_context_create(uint32_t ctx, uint32_t parent);
CALLBACK(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root, size_t vm_config_size);     /* 1 = ok */
CALLBACK(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size); /* 1 = ok */
CALLBACK(proxy_on_done) uint32_t proxy_on_done(uint32_t ctx); /* 1 = done now, 0 = later via proxy_done() */
CALLBACK(proxy_on_log) void proxy_on_log(uint32_t ctx);       /* HTTP: after the stream, before on_done */
CALLBACK(proxy_on_delete) void proxy_on_delete(uint32_t ctx); /* forget everything about ctx */

/* timers, queues, foreign functions: always called with the ROOT context id */
CALLBACK(proxy_on_tick) void proxy_on_tick(uint32_t root);
CALLBACK(proxy_on_queue_ready) void proxy_on_queue_ready(uint32_t root, uint32_t queue_id);
CALLBACK(proxy_on_foreign_function) void proxy_on_foreign_function(uint32_t root, uint32_t function_id, size_t args_size);

/* HTTP stream (an HTTP filter): return an Action */
CALLBACK(proxy_on_request_headers) Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream);
CALLBACK(proxy_on_request_body) Action proxy_on_request_body(uint32_t ctx, size_t body_size, uint32_t end_of_stream);
CALLBACK(proxy_on_request_trailers) Action proxy_on_request_trailers(uint32_t ctx, uint32_t num_trailers);
CALLBACK(proxy_on_response_headers) Action proxy_on_response_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream);
CALLBACK(proxy_on_response_body) Action proxy_on_response_body(uint32_t ctx, size_t body_size, uint32_t end_of_stream);
CALLBACK(proxy_on_response_trailers) Action proxy_on_response_trailers(uint32_t ctx, uint32_t num_trailers);

/* TCP connection (a network filter): return an Action */
CALLBACK(proxy_on_new_connection) Action proxy_on_new_connection(uint32_t ctx);
CALLBACK(proxy_on_downstream_data) Action proxy_on_downstream_data(uint32_t ctx, size_t data_size, uint32_t end_of_stream);
CALLBACK(proxy_on_upstream_data) Action proxy_on_upstream_data(uint32_t ctx, size_t data_size, uint32_t end_of_stream);
CALLBACK(proxy_on_downstream_connection_close) void proxy_on_downstream_connection_close(uint32_t ctx, PeerType peer);
CALLBACK(proxy_on_upstream_connection_close) void proxy_on_upstream_connection_close(uint32_t ctx, PeerType peer);

/* answers to callouts, on the ROOT context; num_headers == 0 means the call failed */
CALLBACK(proxy_on_http_call_response) void proxy_on_http_call_response(
    uint32_t root, uint32_t token, uint32_t num_headers, size_t body_size, uint32_t num_trailers);
CALLBACK(proxy_on_grpc_receive_initial_metadata) void proxy_on_grpc_receive_initial_metadata(uint32_t root, uint32_t token, uint32_t num_elements);
CALLBACK(proxy_on_grpc_receive) void proxy_on_grpc_receive(uint32_t root, uint32_t token, size_t message_size);
CALLBACK(proxy_on_grpc_receive_trailing_metadata) void proxy_on_grpc_receive_trailing_metadata(uint32_t root, uint32_t token, uint32_t num_elements);
CALLBACK(proxy_on_grpc_close) void proxy_on_grpc_close(uint32_t root, uint32_t token, uint32_t grpc_status);

/* ============================================================================================
 * 5. Helpers
 * ============================================================================================ */

/* ---- 5.1 memory: a tiny allocator, exported as `malloc` (the host calls it) and `free` ----
 * Blocks come in power-of-two sizes (16, 32, 64, ... bytes). Each block has an 8-byte header
 * holding its size class; `free` puts a block on the list of its class and `malloc` reuses it.
 * New blocks are cut from the end of the heap, growing linear memory by whole 64 KiB pages.
 * Define PW_NO_ALLOCATOR before including this header to bring your own. */
#ifndef PW_NO_ALLOCATOR
extern unsigned char __heap_base; /* first free byte after our data and stack; set by the linker */
static uintptr_t pw_heap_top_;
static void *pw_free_lists_[32];

EXPORT("malloc") void *malloc(size_t size) {
  unsigned cls = 4; /* 2^4 = 16 bytes is the smallest block */
  while (((size_t)1 << cls) < size) {
    if (++cls >= 31) return NULL; /* over 1 GiB: cannot be served */
  }
  void **block = (void **)pw_free_lists_[cls];
  if (block) { /* reuse a freed block of this size */
    pw_free_lists_[cls] = *block;
    return block;
  }
  if (!pw_heap_top_) pw_heap_top_ = (uintptr_t)&__heap_base;
  uintptr_t header = (pw_heap_top_ + 7) & ~(uintptr_t)7;
  uintptr_t end = header + 8 + ((size_t)1 << cls);
  uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
  if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (size_t)-1) return NULL;
  pw_heap_top_ = end;
  *(uint32_t *)header = cls;
  return (void *)(header + 8);
}

EXPORT("free") void free(void *ptr) {
  if (!ptr) return;
  uint32_t cls = *(uint32_t *)((char *)ptr - 8);
  *(void **)ptr = pw_free_lists_[cls];
  pw_free_lists_[cls] = ptr;
}
#else
void *malloc(size_t size);
void free(void *ptr);
#endif

/* ---- 5.2 strings ----
 * pw_str is a (pointer, length) slice: what the host gives us. It is NOT NUL-terminated. */
typedef struct {
  const char *data;
  size_t len;
} pw_str;

static inline size_t pw_strlen(const char *s) {
  size_t n = 0;
  while (s && s[n]) n++;
  return n;
}
static inline void pw_memcpy(void *dst, const void *src, size_t n) {
  for (size_t i = 0; i < n; i++) ((char *)dst)[i] = ((const char *)src)[i];
}
/* 1 if the slice equals the C string */
static inline int pw_str_eq(pw_str a, const char *b) {
  size_t n = pw_strlen(b);
  if (a.len != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (a.data[i] != b[i]) return 0;
  return 1;
}
/* a slice of a C string (no copy) */
static inline pw_str pw_cstr(const char *s) {
  pw_str r = {s, pw_strlen(s)};
  return r;
}
/* a NUL-terminated copy of a slice, from malloc (free it) */
static inline char *pw_strdup(pw_str s) {
  char *p = (char *)malloc(s.len + 1);
  if (!p) return NULL;
  pw_memcpy(p, s.data, s.len);
  p[s.len] = 0;
  return p;
}

/* ---- 5.3 integers <-> text ---- */
/* Writes the decimal digits of v to out (room for 20 chars, no NUL); returns how many. */
static inline size_t pw_utoa(uint64_t v, char *out) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}
/* Same for a signed value (room for 21 chars). */
static inline size_t pw_itoa(int64_t v, char *out) {
  if (v >= 0) return pw_utoa((uint64_t)v, out);
  out[0] = '-';
  return 1 + pw_utoa(0 - (uint64_t)v, out + 1);
}
/* Parses an optional '-' and decimal digits; anything else -> `fallback`. */
static inline int64_t pw_atoi(pw_str s, int64_t fallback) {
  size_t i = 0;
  int neg = 0;
  uint64_t v = 0;
  if (s.len && s.data[0] == '-') neg = 1, i = 1;
  if (i == s.len) return fallback;
  for (; i < s.len; i++) {
    if (s.data[i] < '0' || s.data[i] > '9') return fallback;
    v = v * 10 + (uint64_t)(s.data[i] - '0');
  }
  return neg ? -(int64_t)v : (int64_t)v;
}

/* ---- 5.4 logging ----
 * pw_log(LOG_INFO, "hello") logs a C string.
 * pw_logf(LOG_INFO, "ctx=%u path=%.*s", ctx, (int)path.len, path.data) formats first. The tiny
 * printf understands only:  %s (C string)  %.*s (length, pointer)  %S (a pw_str)
 *   %d %u %x (32-bit)  %lld %llu (64-bit)  %c  %%.   Lines longer than 1023 bytes are cut. */
static inline WasmResult pw_log(LogLevel level, const char *msg) { return proxy_log(level, msg, pw_strlen(msg)); }

typedef struct {
  char *data;
  size_t len, cap;
} pw_buf; /* a fixed-size output buffer that never overflows (it truncates) */

static inline void pw_buf_put(pw_buf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n && b->len < b->cap; i++) b->data[b->len++] = s[i];
}
static inline void pw_buf_vformat(pw_buf *b, const char *fmt, va_list ap) {
  char num[24];
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      pw_buf_put(b, f, 1);
      continue;
    }
    f++;
    if (*f == 's') {
      const char *s = va_arg(ap, const char *);
      pw_buf_put(b, s ? s : "(null)", s ? pw_strlen(s) : 6);
    } else if (f[0] == '.' && f[1] == '*' && f[2] == 's') {
      int n = va_arg(ap, int);
      const char *s = va_arg(ap, const char *);
      pw_buf_put(b, s, s && n > 0 ? (size_t)n : 0);
      f += 2;
    } else if (*f == 'S') {
      pw_str s = va_arg(ap, pw_str);
      pw_buf_put(b, s.data, s.data ? s.len : 0);
    } else if (*f == 'd') {
      pw_buf_put(b, num, pw_itoa(va_arg(ap, int32_t), num));
    } else if (*f == 'u') {
      pw_buf_put(b, num, pw_utoa(va_arg(ap, uint32_t), num));
    } else if (*f == 'x') {
      uint32_t v = va_arg(ap, uint32_t);
      size_t n = 0;
      do {
        num[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
      } while (v);
      while (n) pw_buf_put(b, &num[--n], 1);
    } else if (f[0] == 'l' && f[1] == 'l' && f[2] == 'd') {
      pw_buf_put(b, num, pw_itoa(va_arg(ap, int64_t), num));
      f += 2;
    } else if (f[0] == 'l' && f[1] == 'l' && f[2] == 'u') {
      pw_buf_put(b, num, pw_utoa(va_arg(ap, uint64_t), num));
      f += 2;
    } else if (*f == 'c') {
      char c = (char)va_arg(ap, int);
      pw_buf_put(b, &c, 1);
    } else if (*f == '%') {
      pw_buf_put(b, "%", 1);
    } else { /* unknown (or a '%' at the very end): print it as is */
      pw_buf_put(b, "%", 1);
      if (!*f) break;
      pw_buf_put(b, f, 1);
    }
  }
}
/* Format into `out` (capacity `cap`); returns the length (no NUL is written). */
static inline size_t pw_format(char *out, size_t cap, const char *fmt, ...) {
  pw_buf b = {out, 0, cap};
  va_list ap;
  va_start(ap, fmt);
  pw_buf_vformat(&b, fmt, ap);
  va_end(ap);
  return b.len;
}
static inline WasmResult pw_logf(LogLevel level, const char *fmt, ...) {
  static char line[1024];
  pw_buf b = {line, 0, sizeof line};
  va_list ap;
  va_start(ap, fmt);
  pw_buf_vformat(&b, fmt, ap);
  va_end(ap);
  return proxy_log(level, line, b.len);
}

/* ---- 5.5 headers (map = MAP_HTTP_REQUEST_HEADERS, MAP_HTTP_RESPONSE_HEADERS, ...) ---- */
/* Reads the first value of `name`. On WASM_RESULT_OK, *value points to host-allocated bytes:
 * free((void *)value->data) when done (data is NULL if the value is empty).
 * WASM_RESULT_NOT_FOUND if the header is absent. */
static inline WasmResult pw_get_header(MapType map, const char *name, pw_str *value) {
  value->data = NULL;
  value->len = 0;
  return proxy_get_header_map_value(map, name, pw_strlen(name), &value->data, &value->len);
}
/* add another value (keeps existing ones) / set the only value / delete; names are C strings */
static inline WasmResult pw_add_header(MapType map, const char *name, const char *value) {
  return proxy_add_header_map_value(map, name, pw_strlen(name), value, pw_strlen(value));
}
static inline WasmResult pw_replace_header(MapType map, const char *name, const char *value) {
  return proxy_replace_header_map_value(map, name, pw_strlen(name), value, pw_strlen(value));
}
static inline WasmResult pw_remove_header(MapType map, const char *name) {
  return proxy_remove_header_map_value(map, name, pw_strlen(name));
}

/* ---- 5.6 the "pairs" format (header maps, local-response headers, http_call headers) ----
 *   u32 N | N x (u32 key_len, u32 value_len) | N x (key bytes, 0, value bytes, 0)
 * all integers little-endian. */
typedef struct {
  const char *key;
  size_t key_len;
  const char *value;
  size_t value_len;
} pw_header;
/* a pw_header from two string literals:  pw_header h[] = {PW_HEADER(":method", "GET")}; */
#define PW_HEADER(k, v) {(k), sizeof(k) - 1, (v), sizeof(v) - 1}

static inline uint32_t pw_get_u32_(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}
static inline void pw_put_u32_(char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (char)(v >> (8 * i));
}
/* bytes pw_pairs_encode needs for these headers */
static inline size_t pw_pairs_size(const pw_header *h, size_t n) {
  size_t total = 4;
  for (size_t i = 0; i < n; i++) total += 8 + h[i].key_len + 1 + h[i].value_len + 1;
  return total;
}
/* Serializes n headers into out; returns the length, or 0 if cap is too small. */
static inline size_t pw_pairs_encode(const pw_header *h, size_t n, char *out, size_t cap) {
  size_t total = pw_pairs_size(h, n);
  if (total > cap) return 0;
  pw_put_u32_(out, (uint32_t)n);
  char *sizes = out + 4, *text = out + 4 + 8 * n;
  for (size_t i = 0; i < n; i++) {
    pw_put_u32_(sizes + 8 * i, (uint32_t)h[i].key_len);
    pw_put_u32_(sizes + 8 * i + 4, (uint32_t)h[i].value_len);
    pw_memcpy(text, h[i].key, h[i].key_len);
    text += h[i].key_len;
    *text++ = 0;
    pw_memcpy(text, h[i].value, h[i].value_len);
    text += h[i].value_len;
    *text++ = 0;
  }
  return total;
}
/* Number of entries in a pairs blob (0 for an empty or short blob). */
static inline uint32_t pw_pairs_count(pw_str blob) { return blob.len >= 4 ? pw_get_u32_(blob.data) : 0; }
/* Entry `index` of a pairs blob; returns 1, or 0 if out of range / malformed. */
static inline int pw_pairs_get(pw_str blob, uint32_t index, pw_str *key, pw_str *value) {
  uint32_t n = pw_pairs_count(blob);
  if (index >= n || blob.len < 4 + 8 * (size_t)n) return 0;
  size_t off = 4 + 8 * (size_t)n;
  for (uint32_t i = 0; i <= index; i++) {
    size_t kl = pw_get_u32_(blob.data + 4 + 8 * i), vl = pw_get_u32_(blob.data + 8 + 8 * i);
    if (off + kl + 1 + vl + 1 > blob.len) return 0;
    if (i == index) {
      key->data = blob.data + off, key->len = kl;
      value->data = blob.data + off + kl + 1, value->len = vl;
      return 1;
    }
    off += kl + 1 + vl + 1;
  }
  return 0;
}

/* Answer the client with `status` and a text body (C strings; headers may be NULL, 0). */
static inline WasmResult pw_send_response(uint32_t status, const char *details, const char *body,
                                          const pw_header *headers, size_t num_headers) {
  static char pairs[1024];
  size_t len = headers ? pw_pairs_encode(headers, num_headers, pairs, sizeof pairs) : 0;
  return proxy_send_local_response(status, details, pw_strlen(details), body, pw_strlen(body), pairs, len,
                                   GRPC_STATUS_NONE);
}

/* ---- 5.7 buffers and configuration ---- */
/* Bytes [start, start+max) of a buffer; free((void *)out->data) when done. */
static inline WasmResult pw_get_buffer(BufferType buffer, size_t start, size_t max, pw_str *out) {
  out->data = NULL;
  out->len = 0;
  return proxy_get_buffer_bytes(buffer, start, max, &out->data, &out->len);
}
/* The plugin configuration (config.configuration in Envoy's YAML); `size` is the number proxy_on_configure got. */
static inline WasmResult pw_get_plugin_config(size_t size, pw_str *out) {
  return pw_get_buffer(BUFFER_PLUGIN_CONFIGURATION, 0, size, out);
}
/* The VM configuration (vm_config.configuration); `size` is the number proxy_on_vm_start got. */
static inline WasmResult pw_get_vm_config(size_t size, pw_str *out) {
  return pw_get_buffer(BUFFER_VM_CONFIGURATION, 0, size, out);
}

/* ---- 5.8 properties ---- */
/* pw_get_property("request.path", &v): the dots become the NUL separators the ABI wants.
 * (So a segment that itself contains a '.' cannot be named this way.) free v.data when done. */
static inline WasmResult pw_get_property(const char *dotted, pw_str *value) {
  char path[256];
  size_t n = 0;
  for (; dotted[n] && n < sizeof path; n++) path[n] = dotted[n] == '.' ? 0 : dotted[n];
  value->data = NULL;
  value->len = 0;
  return proxy_get_property(path, n, &value->data, &value->len);
}

/* ---- 5.9 a minimal JSON reader ----
 * Enough for plugin configurations such as  {"request_headers": {"x-a": "1"}, "max": 5}.
 * It does not build anything: it finds members and hands back slices of the original text.
 * A value's slice is the text between the quotes for strings (escape sequences are left as
 * written, e.g. \" stays two characters) and the raw text for everything else ({...}, [...],
 * 12, true, null). The functions return the value's KIND: its first character ('"' string,
 * '{' object, '[' array, 't'/'f' booleans, 'n' null, '-' or a digit for numbers), 0 = none. */
#define PW_JSON_BAD ((size_t)-1)

static inline size_t pw_json_ws_(pw_str j, size_t i) {
  while (i < j.len && (j.data[i] == ' ' || j.data[i] == '\t' || j.data[i] == '\n' || j.data[i] == '\r')) i++;
  return i;
}
/* index just after the string starting at j.data[i] == '"' */
static inline size_t pw_json_string_end_(pw_str j, size_t i) {
  for (i++; i < j.len; i++) {
    if (j.data[i] == '\\') i++;
    else if (j.data[i] == '"') return i + 1;
  }
  return PW_JSON_BAD;
}
/* index just after the value starting at i */
static inline size_t pw_json_value_end_(pw_str j, size_t i) {
  if (i >= j.len) return PW_JSON_BAD;
  char c = j.data[i];
  if (c == '"') return pw_json_string_end_(j, i);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (i < j.len) {
      c = j.data[i];
      if (c == '"') {
        i = pw_json_string_end_(j, i);
        if (i == PW_JSON_BAD) return PW_JSON_BAD;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      i++;
    }
    return PW_JSON_BAD;
  }
  size_t start = i; /* number, true, false, null */
  while (i < j.len && j.data[i] != ',' && j.data[i] != '}' && j.data[i] != ']' && j.data[i] != ' ' &&
         j.data[i] != '\n' && j.data[i] != '\r' && j.data[i] != '\t')
    i++;
  return i > start ? i : PW_JSON_BAD;
}

/* Walks the members of an object:
 *     pw_json_iter it = pw_json_members(obj);  pw_str k, v;  char kind;
 *     while ((kind = pw_json_next(&it, &k, &v))) { ... }
 * Stops (returns 0) at the end of the object or at the first thing it does not understand. */
typedef struct {
  pw_str json;
  size_t pos; /* PW_JSON_BAD once finished */
} pw_json_iter;

static inline pw_json_iter pw_json_members(pw_str obj) {
  pw_json_iter it = {obj, pw_json_ws_(obj, 0)};
  if (it.pos < obj.len && obj.data[it.pos] == '{') it.pos++;
  else it.pos = PW_JSON_BAD;
  return it;
}
static inline char pw_json_next(pw_json_iter *it, pw_str *key, pw_str *value) {
  pw_str j = it->json;
  if (it->pos == PW_JSON_BAD) return 0;
  size_t i = pw_json_ws_(j, it->pos);
  if (i < j.len && j.data[i] == ',') i = pw_json_ws_(j, i + 1);
  if (i >= j.len || j.data[i] != '"') goto done; /* '}' or garbage: the end */
  size_t kend = pw_json_string_end_(j, i);
  if (kend == PW_JSON_BAD) goto done;
  key->data = j.data + i + 1, key->len = kend - i - 2;
  i = pw_json_ws_(j, kend);
  if (i >= j.len || j.data[i] != ':') goto done;
  i = pw_json_ws_(j, i + 1);
  size_t vend = pw_json_value_end_(j, i);
  if (vend == PW_JSON_BAD) goto done;
  char kind = j.data[i];
  if (kind == '"') value->data = j.data + i + 1, value->len = vend - i - 2;
  else value->data = j.data + i, value->len = vend - i;
  it->pos = vend;
  return kind;
done:
  it->pos = PW_JSON_BAD;
  return 0;
}
/* The member `key` of the object `obj` (first match); returns its kind, 0 if absent. */
static inline char pw_json_get(pw_str obj, const char *key, pw_str *value) {
  pw_json_iter it = pw_json_members(obj);
  pw_str k, v;
  char kind;
  while ((kind = pw_json_next(&it, &k, &v))) {
    if (pw_str_eq(k, key)) {
      *value = v;
      return kind;
    }
  }
  return 0;
}
/* An integer member, or `fallback` if absent or not an integer. */
static inline int64_t pw_json_get_int(pw_str obj, const char *key, int64_t fallback) {
  pw_str v;
  char kind = pw_json_get(obj, key, &v);
  return (kind == '-' || (kind >= '0' && kind <= '9')) ? pw_atoi(v, fallback) : fallback;
}

#endif /* WASMLAB_PROXY_WASM_H */
