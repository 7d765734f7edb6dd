;; hello.wat -- Proxy-Wasm by hand: no SDK, no compiler, just the ABI (version 0.2.1).
;;
;; The module logs every callback the host makes, at info level via proxy_log, as
;;     <callback name> ctx=<context id> <arg name>=<value> ...
;; exactly like hello.c, so the two can be compared line by line. Extras:
;;   - proxy_on_request_headers reads the :path header back with proxy_get_header_map_value:
;;     the host then calls our exported `malloc` to get room for the value (watch for
;;     "[host->vm] malloc(6)" in Envoy's wasm:trace log) and tells us where it put it;
;;   - proxy_on_configure starts a 1000 ms timer when the plugin configuration is non-empty,
;;     so proxy_on_tick shows up.
;; Traffic is not changed. The TCP callbacks are here too, so the same module also works as a
;; network filter (envoy.filters.network.wasm).
;;
;; Build: wasmlab build-modules  (wasmtime.wat2wasm -> modules/hello_wat.wasm)
(module
  ;; ---- what we need from the host: functions of module "env" ----
  ;; every hostcall returns a status (0 = OK); out-parameters are addresses in our memory
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $msg_ptr i32) (param $msg_len i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value (param $map_type i32) (param $key_ptr i32) (param $key_len i32)
      (param $value_ptr_out i32) (param $value_len_out i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds"
    (func $proxy_set_tick_period_milliseconds (param $ms i32) (result i32)))

  ;; ---- our memory (exported: the host reads and writes it) ----
  ;;    0 .. 1359  constant strings, each stored as one length byte followed by the text
  ;; 2048 .. 3071  the log line being built
  ;; 3072 .. 3083  scratch for turning a number into digits
  ;; 3084, 3088    where proxy_get_header_map_value writes the value's pointer and length
  ;; 4096 ..       heap handed out by malloc (grows the memory when needed, never frees)
  (memory (export "memory") 1)
  (global $heap_top (mut i32) (i32.const 4096))
  (global $line_end (mut i32) (i32.const 2048))

  ;; ---- the constant strings; the globals are just their addresses, for readable code ----
  (global $s_on_context_create i32 (i32.const 0))        (data (i32.const 0) "\17proxy_on_context_create")
  (global $s_on_vm_start i32 (i32.const 40))             (data (i32.const 40) "\11proxy_on_vm_start")
  (global $s_on_configure i32 (i32.const 80))            (data (i32.const 80) "\12proxy_on_configure")
  (global $s_on_tick i32 (i32.const 120))                (data (i32.const 120) "\0dproxy_on_tick")
  (global $s_on_queue_ready i32 (i32.const 160))         (data (i32.const 160) "\14proxy_on_queue_ready")
  (global $s_on_request_headers i32 (i32.const 200))     (data (i32.const 200) "\18proxy_on_request_headers")
  (global $s_on_request_body i32 (i32.const 240))        (data (i32.const 240) "\15proxy_on_request_body")
  (global $s_on_request_trailers i32 (i32.const 280))    (data (i32.const 280) "\19proxy_on_request_trailers")
  (global $s_on_response_headers i32 (i32.const 320))    (data (i32.const 320) "\19proxy_on_response_headers")
  (global $s_on_response_body i32 (i32.const 360))       (data (i32.const 360) "\16proxy_on_response_body")
  (global $s_on_response_trailers i32 (i32.const 400))   (data (i32.const 400) "\1aproxy_on_response_trailers")
  (global $s_on_http_call_response i32 (i32.const 440))  (data (i32.const 440) "\1bproxy_on_http_call_response")
  (global $s_on_new_connection i32 (i32.const 480))      (data (i32.const 480) "\17proxy_on_new_connection")
  (global $s_on_downstream_data i32 (i32.const 520))     (data (i32.const 520) "\18proxy_on_downstream_data")
  (global $s_on_upstream_data i32 (i32.const 560))       (data (i32.const 560) "\16proxy_on_upstream_data")
  (global $s_on_downstream_close i32 (i32.const 600))    (data (i32.const 600) "\24proxy_on_downstream_connection_close")
  (global $s_on_upstream_close i32 (i32.const 640))      (data (i32.const 640) "\22proxy_on_upstream_connection_close")
  (global $s_on_log i32 (i32.const 680))                 (data (i32.const 680) "\0cproxy_on_log")
  (global $s_on_done i32 (i32.const 720))                (data (i32.const 720) "\0dproxy_on_done")
  (global $s_on_delete i32 (i32.const 760))              (data (i32.const 760) "\0fproxy_on_delete")
  (global $s_ctx i32 (i32.const 800))                    (data (i32.const 800) "\05 ctx=")
  (global $s_parent i32 (i32.const 840))                 (data (i32.const 840) "\08 parent=")
  (global $s_vm_config_size i32 (i32.const 880))         (data (i32.const 880) "\10 vm_config_size=")
  (global $s_plugin_config_size i32 (i32.const 920))     (data (i32.const 920) "\14 plugin_config_size=")
  (global $s_queue_id i32 (i32.const 960))               (data (i32.const 960) "\0a queue_id=")
  (global $s_num_headers i32 (i32.const 1000))           (data (i32.const 1000) "\0d num_headers=")
  (global $s_end_of_stream i32 (i32.const 1040))         (data (i32.const 1040) "\0f end_of_stream=")
  (global $s_body_size i32 (i32.const 1080))             (data (i32.const 1080) "\0b body_size=")
  (global $s_num_trailers i32 (i32.const 1120))          (data (i32.const 1120) "\0e num_trailers=")
  (global $s_token i32 (i32.const 1160))                 (data (i32.const 1160) "\07 token=")
  (global $s_data_size i32 (i32.const 1200))             (data (i32.const 1200) "\0b data_size=")
  (global $s_peer i32 (i32.const 1240))                  (data (i32.const 1240) "\06 peer=")
  (global $s_path i32 (i32.const 1280))                  (data (i32.const 1280) "\06 path=")
  (global $s_colon_path i32 (i32.const 1320))            (data (i32.const 1320) "\05:path")

  ;; ---- building a log line ----
  ;; append $len bytes from $ptr to the line
  (func $put_bytes (param $ptr i32) (param $len i32)
    (block $done
      (loop $copy
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store8 (global.get $line_end) (i32.load8_u (local.get $ptr)))
        (global.set $line_end (i32.add (global.get $line_end) (i32.const 1)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (local.set $len (i32.sub (local.get $len) (i32.const 1)))
        (br $copy))))

  ;; append one of our constant strings (length byte first, then the text)
  (func $put_str (param $s i32)
    (call $put_bytes (i32.add (local.get $s) (i32.const 1)) (i32.load8_u (local.get $s))))

  ;; append an unsigned number in decimal: digits are produced right to left into the scratch
  (func $put_u32 (param $v i32)
    (local $p i32)
    (local.set $p (i32.const 3083))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $digit (local.get $v)))
    (call $put_bytes (local.get $p) (i32.sub (i32.const 3083) (local.get $p))))

  ;; start a line: "<callback name> ctx=<id>"
  (func $begin (param $name i32) (param $ctx i32)
    (global.set $line_end (i32.const 2048))
    (call $put_str (local.get $name))
    (call $put_str (global.get $s_ctx))
    (call $put_u32 (local.get $ctx)))

  ;; add " <label>=<value>"
  (func $arg (param $label i32) (param $value i32)
    (call $put_str (local.get $label))
    (call $put_u32 (local.get $value)))

  ;; log the line at level 2 (info); the status proxy_log returns is ignored
  (func $emit
    (drop (call $proxy_log (i32.const 2) (i32.const 2048) (i32.sub (global.get $line_end) (i32.const 2048)))))

  ;; ---- the ABI version: the host looks for an export with this name (it is never called) ----
  (func (export "proxy_abi_version_0_2_1"))

  ;; ---- allocator: the host calls it when it has data for us (header values, bodies, ...) ----
  ;; A bump allocator: hands out the next $size bytes (8-byte aligned) and never frees.
  (func (export "malloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap_top) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))          ;; pages * 65536
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then   ;; grow by enough whole pages; memory.grow returns -1 on failure
        (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                     (i32.const 65535))
                                            (i32.const 16)))
                    (i32.const -1))
          (then (return (i32.const 0))))))                            ;; 0 = out of memory
    (global.set $heap_top (local.get $end))
    (local.get $ptr))

  ;; ---- lifecycle ----
  ;; parent 0: a root (plugin) context is born; otherwise a stream of root context $parent
  (func (export "proxy_on_context_create") (param $ctx i32) (param $parent i32)
    (call $begin (global.get $s_on_context_create) (local.get $ctx))
    (call $arg (global.get $s_parent) (local.get $parent))
    (call $emit))

  (func (export "proxy_on_vm_start") (param $root i32) (param $vm_config_size i32) (result i32)
    (call $begin (global.get $s_on_vm_start) (local.get $root))
    (call $arg (global.get $s_vm_config_size) (local.get $vm_config_size))
    (call $emit)
    (i32.const 1))   ;; 1 = started fine (0 would make the host refuse the VM)

  (func (export "proxy_on_configure") (param $root i32) (param $plugin_config_size i32) (result i32)
    (call $begin (global.get $s_on_configure) (local.get $root))
    (call $arg (global.get $s_plugin_config_size) (local.get $plugin_config_size))
    (call $emit)
    (if (local.get $plugin_config_size)
      (then (drop (call $proxy_set_tick_period_milliseconds (i32.const 1000)))))
    (i32.const 1))   ;; 1 = configuration accepted

  (func (export "proxy_on_tick") (param $root i32)
    (call $begin (global.get $s_on_tick) (local.get $root))
    (call $emit))

  (func (export "proxy_on_queue_ready") (param $root i32) (param $queue_id i32)
    (call $begin (global.get $s_on_queue_ready) (local.get $root))
    (call $arg (global.get $s_queue_id) (local.get $queue_id))
    (call $emit))

  ;; ---- HTTP stream: return 0 = Continue, 1 = Pause ----
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $num_headers i32) (param $eos i32) (result i32)
    (local $status i32)
    (call $begin (global.get $s_on_request_headers) (local.get $ctx))
    (call $arg (global.get $s_num_headers) (local.get $num_headers))
    (call $arg (global.get $s_end_of_stream) (local.get $eos))
    (call $put_str (global.get $s_path))
    ;; map 0 = request headers; key ":path"; the host writes the value's address to 3084 and
    ;; its length to 3088 (after calling our malloc for the room)
    (local.set $status (call $proxy_get_header_map_value (i32.const 0)
      (i32.add (global.get $s_colon_path) (i32.const 1)) (i32.load8_u (global.get $s_colon_path))
      (i32.const 3084) (i32.const 3088)))
    (if (i32.eqz (local.get $status))
      (then (call $put_bytes (i32.load (i32.const 3084)) (i32.load (i32.const 3088)))))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_request_body") (param $ctx i32) (param $body_size i32) (param $eos i32) (result i32)
    (call $begin (global.get $s_on_request_body) (local.get $ctx))
    (call $arg (global.get $s_body_size) (local.get $body_size))
    (call $arg (global.get $s_end_of_stream) (local.get $eos))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_request_trailers") (param $ctx i32) (param $num_trailers i32) (result i32)
    (call $begin (global.get $s_on_request_trailers) (local.get $ctx))
    (call $arg (global.get $s_num_trailers) (local.get $num_trailers))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_response_headers") (param $ctx i32) (param $num_headers i32) (param $eos i32) (result i32)
    (call $begin (global.get $s_on_response_headers) (local.get $ctx))
    (call $arg (global.get $s_num_headers) (local.get $num_headers))
    (call $arg (global.get $s_end_of_stream) (local.get $eos))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_response_body") (param $ctx i32) (param $body_size i32) (param $eos i32) (result i32)
    (call $begin (global.get $s_on_response_body) (local.get $ctx))
    (call $arg (global.get $s_body_size) (local.get $body_size))
    (call $arg (global.get $s_end_of_stream) (local.get $eos))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_response_trailers") (param $ctx i32) (param $num_trailers i32) (result i32)
    (call $begin (global.get $s_on_response_trailers) (local.get $ctx))
    (call $arg (global.get $s_num_trailers) (local.get $num_trailers))
    (call $emit)
    (i32.const 0))

  ;; answer to a proxy_http_call (this module makes none): arrives on the ROOT context
  (func (export "proxy_on_http_call_response")
      (param $root i32) (param $token i32) (param $num_headers i32) (param $body_size i32) (param $num_trailers i32)
    (call $begin (global.get $s_on_http_call_response) (local.get $root))
    (call $arg (global.get $s_token) (local.get $token))
    (call $arg (global.get $s_num_headers) (local.get $num_headers))
    (call $arg (global.get $s_body_size) (local.get $body_size))
    (call $arg (global.get $s_num_trailers) (local.get $num_trailers))
    (call $emit))

  ;; ---- TCP connection (when used as a network filter): 0 = Continue ----
  (func (export "proxy_on_new_connection") (param $ctx i32) (result i32)
    (call $begin (global.get $s_on_new_connection) (local.get $ctx))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_downstream_data") (param $ctx i32) (param $data_size i32) (param $eos i32) (result i32)
    (call $begin (global.get $s_on_downstream_data) (local.get $ctx))
    (call $arg (global.get $s_data_size) (local.get $data_size))
    (call $arg (global.get $s_end_of_stream) (local.get $eos))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_upstream_data") (param $ctx i32) (param $data_size i32) (param $eos i32) (result i32)
    (call $begin (global.get $s_on_upstream_data) (local.get $ctx))
    (call $arg (global.get $s_data_size) (local.get $data_size))
    (call $arg (global.get $s_end_of_stream) (local.get $eos))
    (call $emit)
    (i32.const 0))

  (func (export "proxy_on_downstream_connection_close") (param $ctx i32) (param $peer i32)
    (call $begin (global.get $s_on_downstream_close) (local.get $ctx))
    (call $arg (global.get $s_peer) (local.get $peer))
    (call $emit))

  (func (export "proxy_on_upstream_connection_close") (param $ctx i32) (param $peer i32)
    (call $begin (global.get $s_on_upstream_close) (local.get $ctx))
    (call $arg (global.get $s_peer) (local.get $peer))
    (call $emit))

  ;; ---- the end of a context (HTTP streams: on_log, then on_done, then on_delete) ----
  (func (export "proxy_on_log") (param $ctx i32)
    (call $begin (global.get $s_on_log) (local.get $ctx))
    (call $emit))

  (func (export "proxy_on_done") (param $ctx i32) (result i32)
    (call $begin (global.get $s_on_done) (local.get $ctx))
    (call $emit)
    (i32.const 1))   ;; 1 = finished, the host may delete the context now

  (func (export "proxy_on_delete") (param $ctx i32)
    (call $begin (global.get $s_on_delete) (local.get $ctx))
    (call $emit))
)
