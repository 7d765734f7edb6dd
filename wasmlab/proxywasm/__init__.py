"""The Proxy-Wasm host: module cache, VMs, contexts, host functions, shared data and queues."""
