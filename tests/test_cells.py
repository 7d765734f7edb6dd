"""Re-running a notebook cell that builds a Proxy closes the proxy its last run built
(``wasmlab/host/cells.py``), with a one-line notice; nothing else is closed.

The cells run in IPython's own shell (``InteractiveShell.run_cell``), with the ``cell_id`` a
front end such as JupyterLab sends, or without one, as nbclient runs a notebook.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import CONFIGS
from wasmlab import Proxy
from wasmlab.host.cells import NOTICE

CONFIG = str(CONFIGS / "wasmlab-only" / "native_add_header.yaml")


@pytest.fixture
def shell() -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.user_ns.update(Proxy=Proxy, CONFIG=CONFIG)
    built: list[Proxy] = []
    sh.user_ns["built"] = built
    yield sh
    for p in built:
        p.close()


def run(shell: Any, source: str, cell_id: str | None) -> None:
    result = shell.run_cell(source, store_history=True, cell_id=cell_id)
    result.raise_error()


BUILD = "proxy = Proxy.from_yaml(CONFIG, workers=1); built.append(proxy)"


def test_rerunning_a_cell_closes_the_proxy_it_built_before(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, BUILD, "cell-a")
    first = shell.user_ns["proxy"]
    assert NOTICE not in capsys.readouterr().out
    run(shell, BUILD, "cell-a")
    second = shell.user_ns["proxy"]
    assert first.closed and not second.closed
    assert capsys.readouterr().out.count(NOTICE) == 1
    assert second.request("GET", "/").status == 200


def test_one_run_may_build_several_and_other_cells_are_left_alone(
    shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    two = "a = Proxy.from_yaml(CONFIG, workers=1); b = Proxy.from_yaml(CONFIG, workers=1); built += [a, b]"
    run(shell, two, "cell-two")
    a, b = shell.user_ns["a"], shell.user_ns["b"]
    assert not a.closed and not b.closed, "proxies of one run never close each other"
    run(shell, BUILD, "cell-other")
    assert not a.closed and not b.closed, "another cell builds its own proxy"
    run(shell, two, "cell-two")
    assert a.closed and b.closed
    assert not shell.user_ns["a"].closed and not shell.user_ns["b"].closed
    assert not shell.user_ns["proxy"].closed
    assert capsys.readouterr().out.count(NOTICE) == 1


def test_without_a_cell_id_the_cell_text_names_the_cell(shell: Any) -> None:
    run(shell, BUILD, None)
    first = shell.user_ns["proxy"]
    run(shell, BUILD + "  # edited", None)  # another text: another cell
    assert not first.closed
    second = shell.user_ns["proxy"]
    run(shell, BUILD + "  # edited", None)
    assert second.closed and not first.closed


def test_a_proxy_closed_by_the_learner_gets_no_notice(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    src = "with Proxy.from_yaml(CONFIG, workers=1) as p:\n    status = p.request('GET', '/').status"
    run(shell, src, "cell-with")
    run(shell, src, "cell-with")
    assert shell.user_ns["status"] == 200
    assert NOTICE not in capsys.readouterr().out


def test_outside_a_cell_nothing_is_closed() -> None:
    with Proxy.from_yaml(CONFIG, workers=1) as a, Proxy.from_yaml(CONFIG, workers=1) as b:
        assert not a.closed and not b.closed


def test_in_a_real_kernel_with_jupyterlabs_cell_id_no_thread_is_left_behind() -> None:
    """The same through ipykernel, with the ``cellId`` JupyterLab puts in each execute request's
    metadata: re-running the cell three times leaves no thread of the earlier proxies behind (on
    main each run left its 3 dispatchers and up to 8 upstream threads: 7 per run here)."""
    import os

    from jupyter_client.manager import start_new_kernel

    from conftest import ROOT

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:

        def run(code: str, cell_id: str) -> str:
            msg = kc.session.msg(
                "execute_request",
                {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
                metadata={"cellId": cell_id},
            )
            kc.shell_channel.send(msg)
            out = []
            while True:
                m = kc.get_iopub_msg(timeout=60)
                if m["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                    continue
                if m["msg_type"] == "stream":
                    out.append(m["content"]["text"])
                elif m["msg_type"] == "error":
                    raise AssertionError(m["content"]["evalue"])
                elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    return "".join(out)

        run(f"import threading, wasmlab\nfrom wasmlab import Proxy\nCONFIG = {CONFIG!r}", "setup")
        cell = "\n".join(
            [
                "proxy = Proxy.from_yaml(CONFIG)",
                "proxy.request_many([('GET', '/')] * 20)",
                "srv = proxy._server",
                "mine = {d._thread for d in (srv.main, *srv.workers)} | set(srv.upstream_pool._threads())",
                "print(len([t for t in threading.enumerate() if t not in mine]))",
            ]
        )
        outputs = [run(cell, "the-cell") for _ in range(3)]
        assert NOTICE not in outputs[0] and all(NOTICE in o for o in outputs[1:])
        others = {o.strip().splitlines()[-1] for o in outputs}  # threads not of the newest proxy
        assert len(others) == 1, f"threads besides the newest proxy's, per run: {outputs}"
        assert run("print(wasmlab.__file__)", "where").startswith(str(ROOT / "wasmlab"))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
