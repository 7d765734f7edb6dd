"""The Wasm callback deadline holds while Python threads are busy (issue 14: with 8 busy threads
a 1 s deadline fired after 10-13 s, because the epoch ticker was a Python thread waiting for the
GIL). Run in its own process: the busy threads and a hung guest must not slow pytest."""

from __future__ import annotations

from safety_helpers import run_isolated

_RUN = """
import threading, time
from conftest import FIXTURES
from wasm_diff import plugin_yaml
from wasmlab import Proxy
stop = False
def burn():
    x = 0
    while not stop:
        x += 1
busy = [threading.Thread(target=burn, daemon=True) for _ in range(8)]
yaml = plugin_yaml(FIXTURES / "wasm" / "infinite_loop.wasm")
with Proxy.from_yaml(yaml, workers=1, options={"wasm_callback_deadline_s": 1.0}) as p:
    for t in busy:
        t.start()
    t0 = time.monotonic()
    r = p.request("GET", "/loop", timeout=60)
    took = time.monotonic() - t0
    stop = True
    print("status", r.status, "took", round(took, 2))
    assert any("callback deadline exceeded" in ln for ln in p.logs)
"""


def test_one_second_deadline_holds_with_eight_busy_python_threads():
    out = run_isolated(_RUN, timeout=120)
    assert out.returncode == 0, out.explain()  # also: no crash at exit with the kernel timer
    assert "status 503" in out.stdout
    took = float(out.stdout.split("took")[1])
    # by design the Store's budget is 1.5x the deadline (vm.py); measured 1.6-1.8 s, 12.7 s before
    assert took < 4.0, out.stdout
