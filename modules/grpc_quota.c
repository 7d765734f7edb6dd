/* grpc_quota.c -- ask a gRPC service before letting a request through (a unary gRPC callout).
 *
 *   1. proxy_on_request_headers: send wasmlab.Quota/Check to the cluster "grpc" with one
 *      protobuf message, CheckRequest{ string user = 1; } (user = the x-user header, or
 *      "anonymous"), remember which stream waits for which token, and PAUSE the request.
 *   2. Envoy calls back on the ROOT context:
 *        - proxy_on_grpc_receive(root, token, size) when the call SUCCEEDED (grpc-status 0):
 *          the reply, CheckReply{ string verdict = 1; }, is in buffer 5 (GRPC_RECEIVE_BUFFER).
 *          "allow" -> add x-quota: allow and continue the stream; anything else -> a local 429.
 *          On success Envoy calls nothing else for a unary call (no proxy_on_grpc_close).
 *        - proxy_on_grpc_close(root, token, status) when it FAILED: a non-zero grpc-status,
 *          a timeout, no upstream. The request gets a local 503.
 * The protobuf is written and read by hand (tag byte, length byte, bytes): a real module would
 * use an SDK's protobuf library. */
#include "proxy_wasm.h"

PROXY_ABI_VERSION_0_2_1;

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
static uint32_t take_waiting(uint32_t token) {
  for (int i = 0; i < MAX_WAITING; i++)
    if (waiting[i].ctx && waiting[i].token == token) {
      uint32_t ctx = waiting[i].ctx;
      waiting[i].ctx = 0;
      return ctx;
    }
  return 0;
}

void proxy_on_context_create(uint32_t ctx, uint32_t parent) {}
uint32_t proxy_on_vm_start(uint32_t root, size_t vm_config_size) { return 1; }
uint32_t proxy_on_configure(uint32_t root, size_t plugin_config_size) { return 1; }

Action proxy_on_request_headers(uint32_t ctx, uint32_t num_headers, uint32_t end_of_stream) {
  pw_str user = {NULL, 0};
  if (pw_get_header(MAP_HTTP_REQUEST_HEADERS, "x-user", &user) != WASM_RESULT_OK || user.len == 0 || user.len > 100)
    user = pw_cstr("anonymous");
  /* CheckRequest{user}: field 1, wire type 2 (length-delimited) -> tag 0x0a, then length, then bytes */
  char message[128];
  message[0] = 0x0a;
  message[1] = (char)user.len;
  pw_memcpy(message + 2, user.data, user.len);
  uint32_t token = 0;
  WasmResult rc = proxy_grpc_call("grpc", 4, "wasmlab.Quota", 13, "Check", 5, NULL, 0, message, 2 + user.len, 1000,
                                  &token);
  pw_logf(LOG_INFO, "grpc_quota: ctx=%u asks wasmlab.Quota/Check for %S -> token %u", ctx, user, token);
  if (rc != WASM_RESULT_OK || !remember(token, ctx)) {
    pw_send_response(503, "grpc_quota_call_failed", "quota service unavailable\n", NULL, 0);
  }
  return ACTION_PAUSE; /* hold the request until the answer comes */
}

void proxy_on_grpc_receive(uint32_t root, uint32_t token, size_t size) {
  uint32_t ctx = take_waiting(token);
  if (!ctx) return;
  pw_str reply = {NULL, 0}, verdict = {NULL, 0};
  pw_get_buffer(BUFFER_GRPC_RECEIVE_BUFFER, 0, size, &reply);
  if (reply.len >= 2 && reply.data[0] == 0x0a && (size_t)(uint8_t)reply.data[1] + 2 <= reply.len)
    verdict = (pw_str){reply.data + 2, (uint8_t)reply.data[1]};
  pw_logf(LOG_INFO, "grpc_quota: token %u for ctx=%u: verdict %S", token, ctx, verdict);
  proxy_set_effective_context(ctx); /* from here on, hostcalls act on the waiting stream */
  if (pw_str_eq(verdict, "allow")) {
    pw_add_header(MAP_HTTP_REQUEST_HEADERS, "x-quota", "allow");
    proxy_continue_stream(STREAM_HTTP_REQUEST);
  } else {
    pw_send_response(429, "grpc_quota_denied", "quota exceeded\n", NULL, 0);
  }
  free((void *)reply.data);
}

void proxy_on_grpc_close(uint32_t root, uint32_t token, uint32_t status) {
  uint32_t ctx = take_waiting(token);
  pw_logf(LOG_INFO, "grpc_quota: token %u failed with grpc-status %u", token, status);
  if (!ctx) return;
  proxy_set_effective_context(ctx);
  pw_send_response(503, "grpc_quota_failed", "quota service failed\n", NULL, 0);
}

void proxy_on_delete(uint32_t ctx) {
  for (int i = 0; i < MAX_WAITING; i++)
    if (waiting[i].ctx == ctx) waiting[i].ctx = 0; /* the client went away before the answer */
}
uint32_t proxy_on_done(uint32_t ctx) { return 1; }
