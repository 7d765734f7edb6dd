"""``wasmlab bench`` hygiene: ``--only`` that matches nothing is an error naming every benchmark,
a figure name is reported once per run, ``--quick`` reports its own wall time, and the request
families carry no duplicate figures. Nothing here asserts a measured time (the figures are
checked for names, units and finiteness only); the whole quick run with real Envoy is
tests/test_fastpath.py's ``test_bench_vs_envoy_reports_every_named_figure_once``."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import pytest

from conftest import ROOT
from wasmlab import bench, cli
from wasmlab.bench import install, throughput
from wasmlab.bench.core import Result


def run(capsys, *argv):
    capsys.readouterr()
    rc = cli.main(["bench", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def fake(*names):
    def family(args):
        for n in names:
            yield Result(n, 1.0, "x", 0.0)

    return family


@pytest.fixture
def fake_families(monkeypatch):
    """Two cheap families in place of the real ones (the vs_envoy and install families stay)."""
    families = {"alpha": fake("alpha.one", "alpha.two"), "beta.gamma": fake("beta.gamma.three")}
    monkeypatch.setattr(bench, "FAMILIES", families)
    return families


def test_only_matching_nothing_exits_2_and_lists_the_benchmarks(capsys):
    rc, out, err = run(capsys, "--only", "NOSUCH")
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("wasmlab: error: --only 'NOSUCH' matches no benchmark; the benchmarks are: call, request,")
    for name in [*bench.FAMILIES, *bench.ON_REQUEST]:
        assert name in err


def test_only_naming_a_flagged_family_says_which_flag(capsys):
    rc, out, err = run(capsys, "--only", "install")
    assert (rc, out) == (2, "")
    assert "add --install" in err


def test_only_selects_by_family_name(capsys, fake_families):
    rc, out, _ = run(capsys, "--only", "gamma", "--json")
    assert rc == 0
    assert [r["name"] for r in json.loads(out)] == ["beta.gamma.three"]


def test_a_figure_reported_twice_is_an_error(capsys, monkeypatch):
    monkeypatch.setattr(bench, "FAMILIES", {"a": fake("same.name"), "b": fake("other", "same.name")})
    rc, out, err = run(capsys, "--json")
    assert rc == 2
    assert err == "wasmlab: error: figure 'same.name' is reported twice (by 'a' and 'b')\n"


def test_quick_reports_its_own_wall_time_last(capsys, fake_families):
    rc, out, _ = run(capsys, "--quick", "--json")
    assert rc == 0
    results = json.loads(out)
    assert [r["name"] for r in results] == ["alpha.one", "alpha.two", "beta.gamma.three", "bench.quick_s"]
    quick = results[-1]
    assert quick["unit"] == "s" and math.isfinite(quick["value"]) and quick["value"] >= 0


def test_quick_s_only_for_the_whole_quick_set(capsys, fake_families):
    for argv in (["--json"], ["--quick", "--only", "alpha", "--json"]):
        rc, out, _ = run(capsys, *argv)
        assert rc == 0
        assert "bench.quick_s" not in [r["name"] for r in json.loads(out)], argv


def test_text_output_heads_each_family(capsys, fake_families):
    rc, out, _ = run(capsys, "--quick")
    lines = out.splitlines()
    assert lines[0] == "# alpha" and lines[3] == "# beta.gamma"
    assert lines[-1].startswith("bench.quick_s ")


def test_request_family_names_each_figure_once(monkeypatch):
    """The request figures, with the measuring stubbed out: one name per (kind, workers, shape);
    the aliases that measured the same config twice are gone."""
    monkeypatch.setattr(throughput, "_measure", lambda *a, **k: ([1000.0, 1100.0, 900.0], [500.0, 600.0]))
    args = argparse.Namespace(quick=True, only=None, json=True)
    names = [r.name for r in throughput.bench_requests(args)]
    assert len(names) == len(set(names))
    assert "request.direct.many_rps_1worker" in names
    assert "request.lua_unguarded.many_rps_2workers" in names
    assert "request.direct_response.many_rps_1w_3native" in names
    for gone in ("request.direct_response.rps_1worker", "request.direct_response.many_rps_1w_0native"):
        assert gone not in names
    assert not [n for n in names if n.startswith("request.lua_add_header.")]


def test_cheap_real_families_report_finite_unique_figures(capsys):
    rc, out, _ = run(capsys, "--quick", "--only", "lua.guard_cost", "--json")
    assert rc == 0
    results = json.loads(out)
    names = [r["name"] for r in results]
    assert names == [
        "lua.guard_cost.hook_run_guarded",
        "lua.guard_cost.loop_1e6_guarded",
        "lua.guard_cost.hook_run_unguarded",
        "lua.guard_cost.loop_1e6_unguarded",
    ]
    assert all(math.isfinite(r["value"]) and r["value"] > 0 for r in results)


def test_disk_mb_counts_what_du_counts(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 2**20)
    (tmp_path / "link").symlink_to(tmp_path / "d" / "f")
    assert 1.0 <= install.disk_mb(tmp_path) < 1.1


@pytest.mark.parametrize("argv", [["setup", "nosuch"], ["setup", "lab", "extra"], ["nosuch"]])
def test_bootstrap_setup_refuses_bad_arguments_without_installing(argv, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bootstrap.py"), *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "python3 bootstrap.py setup lab|test" in proc.stderr
