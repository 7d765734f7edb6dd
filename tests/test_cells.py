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
