"""The ``wasmlab`` command.

    wasmlab lab                      open the course in JupyterLab
    wasmlab request CONFIG METHOD PATH [-H 'k: v']... [--body B] [--workers N] [--json]
    wasmlab trace CONFIG METHOD PATH --format envoy|json|text
    wasmlab envoy request CONFIG METHOD PATH ...   (the same through real Envoy, same JSON)
    wasmlab envoy validate CONFIG...
    wasmlab bench [--json] [--quick] [--vs-envoy] [--install] [--only NAME]
    wasmlab doctor
    wasmlab build-modules [--check]
    wasmlab build assemblyscript [--check]   the lesson-05 AssemblyScript filter (needs Node.js)
    wasmlab package MODULE.wasm --oci DIR [--tag T]
    wasmlab course build [--check]   write the student and solution notebooks from notebooks/source/
    wasmlab grade PATH... [--json] [--csv FILE] [--timeout S]   run notebooks, table of check results

Bad input prints one line on stderr and exits with code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import WasmlabError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _headers(values: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for h in values or []:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"-H {h!r}: expected 'name: value'")
        out.append((name.strip(), value.strip()))
    return out


def _add_request_args(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("config", help="Envoy bootstrap YAML")
    p.add_argument("method", help="HTTP method, e.g. GET")
    p.add_argument("path", help="request path, e.g. /hello")
    p.add_argument("-H", "--header", action="append", metavar="'NAME: VALUE'", help="request header (repeatable)")
    p.add_argument("--body", default="", help="request body")
    p.add_argument("--workers", type=int, default=1, help="worker threads (default 1)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object")


def _print_response(r: Any, as_json: bool, trace: list[dict[str, Any]]) -> None:
    if as_json:
        d = r.to_dict()
        d["trace"] = trace
        print(json.dumps(d, default=str))
        return
    print(f"HTTP {r.status}")
    for k, v in r.headers:
        print(f"{k}: {v}")
    print()
    sys.stdout.write(r.body.decode("utf-8", "replace"))
    if r.body and not r.body.endswith(b"\n"):
        print()


def cmd_request(args: argparse.Namespace) -> int:
    from .host.proxy import Proxy

    with Proxy.from_yaml(args.config, workers=args.workers) as proxy:
        r = proxy.request(args.method, args.path, _headers(args.header), args.body)
        trace = proxy.trace.to_list()
    _print_response(r, args.json, trace)
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .host.proxy import Proxy

    with Proxy.from_yaml(args.config, workers=args.workers) as proxy:
        proxy.request(args.method, args.path, _headers(args.header), args.body)
    trace = proxy.trace
    if args.format == "json":
        print(trace.to_json(indent=1))
    elif args.format == "envoy":
        from .trace.export import envoy_lines

        for line in envoy_lines(trace.events, label_threads=True):  # each line names its thread
            print(line)
    else:
        print(trace.text())
    return 0


def cmd_envoy_request(args: argparse.Namespace) -> int:
    from .envoy import run

    with run(args.config, workers=args.workers) as envoy:
        r = envoy.request(args.method, args.path, _headers(args.header), args.body)
        trace = envoy.trace.to_list()
    _print_response(r, args.json, trace)
    return 0


def cmd_envoy_validate(args: argparse.Namespace) -> int:
    from .envoy import validate

    failed = 0
    for cfg in args.configs:
        ok, msg = validate(cfg)
        print(f"{'ok  ' if ok else 'FAIL'} {cfg}" + ("" if ok else f": {msg}"))
        failed += not ok
    return 1 if failed else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    return doctor()


def cmd_lab(args: argparse.Namespace, extra: list[str]) -> int:
    from .lab import lab

    return lab(args.dir, extra)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.profile:
        from .bench_profile import main as profile_main

        return profile_main(args)
    from .bench import main as bench_main

    return bench_main(args)


def cmd_package(args: argparse.Namespace) -> int:
    from .package import package_oci

    desc = package_oci(args.module, args.oci, tag=args.tag, created=args.created)
    print(
        f"{args.oci}: OCI image layout, {args.module} tagged {args.tag!r}, manifest {desc.digest} ({desc.size} bytes)"
    )
    return 0


def cmd_build_modules(args: argparse.Namespace) -> int:
    from .modules import build_modules

    return build_modules(check=args.check, verbose=not args.quiet)


def cmd_build(args: argparse.Namespace) -> int:
    from .assemblyscript import build

    return build(check=args.check, verbose=not args.quiet)


def cmd_course_build(args: argparse.Namespace) -> int:
    from .course import build

    return build(check=args.check, missing=args.missing, verbose=not args.quiet)


def cmd_grade(args: argparse.Namespace) -> int:
    from .grade import main as grade_main

    return grade_main(args)


def _add_course_parsers(sub: Any) -> None:
    p = sub.add_parser("course", help="the course's notebooks (authors)")
    csub = p.add_subparsers(dest="course_command", parser_class=_Parser)
    csub.required = True
    cp = csub.add_parser("build", help="write notebooks/NN-*.ipynb and notebooks/solutions/ from notebooks/source/")
    cp.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file differs")
    cp.add_argument("--missing", action="store_true", help="write only the generated files that do not exist")
    cp.add_argument("--quiet", action="store_true")
    cp.set_defaults(func=cmd_course_build)

    p = sub.add_parser("grade", help="run notebooks headless and tabulate their exercise checks")
    p.add_argument("paths", nargs="+", metavar="PATH", help="notebooks or folders of notebooks")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--csv", metavar="FILE", help="also write one CSV row per notebook and exercise")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook (default 600)")
    p.add_argument("--course", metavar="DIR", help="the course's notebooks/ folder (lesson files resolve there)")
    p.set_defaults(func=cmd_grade)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wasmlab", description="Learn how Envoy is extended: native, Lua and Proxy-Wasm filters.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("lab", help="open the course in JupyterLab (extra args go to jupyter lab)")
    p.add_argument("--dir", help="where to put the course when not running from a checkout")
    p.set_defaults(func=cmd_lab, takes_extra=True)

    p = sub.add_parser("request", help="send one request through wasmlab")
    _add_request_args(p)
    p.set_defaults(func=cmd_request)

    p = sub.add_parser("trace", help="send one request and print its trace")
    _add_request_args(p, json_flag=False)
    p.add_argument("--format", choices=["envoy", "json", "text"], default="text")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("envoy", help="the same through real Envoy")
    esub = p.add_subparsers(dest="envoy_command", parser_class=_Parser)
    esub.required = True
    ep = esub.add_parser("request", help="send one request through real Envoy")
    _add_request_args(ep)
    ep.set_defaults(func=cmd_envoy_request)
    ep = esub.add_parser("validate", help="envoy --mode validate")
    ep.add_argument("configs", nargs="+")
    ep.set_defaults(func=cmd_envoy_validate)

    p = sub.add_parser("bench", help="benchmarks (numbers and ratios, measured side by side)")
    p.add_argument("--json", action="store_true", help="print one JSON list of {name, value, unit, spread}")
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds (a smoke run); reports bench.quick_s")
    p.add_argument("--vs-envoy", action="store_true", help="also measure the same configs through real Envoy")
    p.add_argument("--install", action="store_true", help="also time `bootstrap.py setup lab` in a fresh clone")
    p.add_argument("--only", help="run only benchmarks whose name contains this text")
    p.add_argument("--profile", metavar="KIND", help="where one request's CPU goes (noop, lua, wasm, wasm-traced...)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("doctor", help="check what the course needs and how to fix what is missing")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("build-modules", help="build the C Proxy-Wasm modules with ziglang")
    p.add_argument("--check", action="store_true", help="rebuild and fail if a committed .wasm differs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_build_modules)

    p = sub.add_parser("build", help="build a module from a high-level language (needs Node.js)")
    p.add_argument("target", choices=["assemblyscript"], help="modules/assemblyscript -> modules/add_header_as.wasm")
    p.add_argument("--check", action="store_true", help="rebuild and fail if the committed .wasm differs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("package", help="write a .wasm as a Wasm OCI artifact in an OCI image layout (no network)")
    p.add_argument("module", help="the .wasm file")
    p.add_argument("--oci", required=True, metavar="DIR", help="the image layout's folder (created)")
    p.add_argument("--tag", default="latest", help="the tag in index.json (default: latest)")
    p.add_argument("--created", help="the config's created time, RFC 3339 (default: now)")
    p.set_defaults(func=cmd_package)

    _add_course_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "takes_extra", False):
            return int(args.func(args, extra))
        return int(args.func(args))
    except (WasmlabError, ValueError, KeyError, TypeError, OSError) as e:
        if os.environ.get("WASMLAB_DEBUG"):
            raise
        msg = str(e) if not isinstance(e, KeyError) else str(e.args[0]) if e.args else "KeyError"
        print(f"wasmlab: error: {' '.join(msg.split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
