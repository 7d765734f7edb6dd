"""HTTP filter kinds: native (Python), Lua and Proxy-Wasm."""
