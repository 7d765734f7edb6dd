// add_header_as: an HTTP filter written with the Proxy-Wasm AssemblyScript SDK
// (@solo-io/proxy-runtime). wasmlab lesson 05 builds it with `wasmlab build assemblyscript`.
//
// On every request it adds `x-wasm-sdk: assemblyscript` before the request goes upstream.
// On every response it adds `x-hello: <plugin configuration>` (or `x-hello: world` when the
// configuration is empty) before the response goes to the client.

// The SDK's exports: proxy_abi_version_0_2_0, proxy_on_context_create, proxy_on_request_headers, ...
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  stream_context,
} from "@solo-io/proxy-runtime";

// One root context per plugin (per VM): it holds the configuration and makes stream contexts.
class AddHeaderRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AddHeader(context_id, this);
  }
}

// One stream context per HTTP request.
class AddHeader extends Context {
  constructor(context_id: u32, root_context: AddHeaderRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.request.add("x-wasm-sdk", "assemblyscript");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    // Written as in the SDK's README. A shorter form,
    //   const greeting = this.root_context.getConfiguration();
    //   stream_context.headers.response.add("x-hello", greeting == "" ? "world" : greeting);
    // compiles, but with assemblyscript 0.14's reference counting it frees the configuration
    // string after the first response: the second response traps ("memory access out of
    // bounds") on real Envoy and on wasmlab alike.
    const root_context = this.root_context;
    if (root_context.getConfiguration() == "") {
      stream_context.headers.response.add("x-hello", "world");
    } else {
      stream_context.headers.response.add("x-hello", root_context.getConfiguration());
    }
    return FilterHeadersStatusValues.Continue;
  }
}

// The root_id in Envoy's config (config.root_id) picks this root context.
registerRootContext((context_id: u32) => {
  return new AddHeaderRoot(context_id);
}, "add_header_as");
