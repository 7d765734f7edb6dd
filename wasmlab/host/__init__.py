"""The in-process Envoy-like host: threads, dispatchers, HCM, filter chain, router, upstreams."""
