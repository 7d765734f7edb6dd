"""Configuration updates: ``proxy.update(yaml)`` applies new listeners as Envoy applies LDS.

What Envoy 1.40 does with an LDS update (measured with listeners from a watched file, see
``tests/test_update.py`` and ``wasmlab/envoy/lds_files.py``):

1. On the **main thread** it builds the changed listeners: their HTTP filter factories, and for a
   Wasm filter the VMs by vm key — the base VM of a vm key that already runs is reused, a new
   **canary** VM checks the plugin (create, ``on_vm_start``, ``on_configure``) and is dropped, and
   the main thread's VM of that vm key gets a **new root context** for the new plugin. Changed
   code (another vm key) gets a new base VM and new VMs everywhere. A plugin that is exactly the
   same (same name, root_id, configuration and vm key — e.g. only a route changed) is not touched
   at all: the new filter shares its root contexts.
2. If anything fails to load, the **whole update is rejected** (``lds: listener 'NAME' config
   rejected: ...``, reason ``Error adding/updating listener(s) NAME: ...``) and the old listeners
   keep serving as if nothing happened.
3. The new listener is **posted to the workers**: each worker's VM for the vm key gets a root
   context for the new plugin (``proxy_on_configure`` on the same VM when only the plugin
   configuration changed), then new streams use the new filters.
4. Streams in flight **finish on the filters they started with**. The old listener drains; once it
   is drained, the old root contexts get ``proxy_on_done``/``proxy_on_delete`` (main thread first,
   then each worker) and VMs left without a root context go away.

Where wasmlab simplifies: a listener is drained as soon as its last stream ends (Envoy waits
``--drain-time-s``, 600 s by default); only HTTP listeners can change (a TCP listener, the
clusters and the bootstrap extensions stay those of the first config — Envoy needs CDS for
clusters); the update comes from ``proxy.update`` instead of a file or an xDS server.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from ..config.bootstrap import Bootstrap
from ..errors import WasmlabError
from .extensions import load_config
from .hcm import HttpConnectionManager

if TYPE_CHECKING:
    from .proxy import Proxy


@dataclass
class UpdateResult:
    """What happened to one update: applied, or rejected with Envoy's reason."""

    accepted: bool
    reason: str = ""
    #: the listeners the update added, changed or removed
    listeners: tuple[str, ...] = ()


def _raw_listeners(text: str, twice: list[str] | None = None) -> dict[str, Any]:
    """The listeners of a YAML text by name, as plain data (to see which ones changed); the first
    of two with one name (each name met again is added to ``twice``, once per repeat)."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    sr = data.get("static_resources") if isinstance(data, dict) else None
    out: dict[str, Any] = {}
    for i, lst in enumerate((sr or {}).get("listeners") or []):
        if isinstance(lst, dict):
            name = str(lst.get("name") or f"listener_{i}")
            if name in out:
                if twice is not None:
                    twice.append(name)
                continue
            out[name] = lst
    return out


def _source_text(source: str | os.PathLike[str]) -> str:
    if isinstance(source, os.PathLike) or ("\n" not in str(source) and os.path.isfile(str(source))):
        try:
            with open(source) as fh:
                return fh.read()
        except OSError:
            return ""
    return str(source)


def _plugin_key(ext: Any) -> str | None:
    plugin = getattr(ext, "plugin", None)
    return getattr(plugin, "key", None) if plugin is not None and hasattr(ext, "load_failed") else None


def _factories(hcms: dict[str, HttpConnectionManager]) -> list[Any]:
    """The extensions of these HCMs, in Envoy's order: HTTP filters, then Wasm access loggers."""
    out: list[Any] = [fc.factory for hcm in hcms.values() for fc in hcm.config.http_filters]
    for hcm in hcms.values():
        out.extend(log.plugin for log in hcm.config.access_logs if log.plugin is not None)
    return out


class Generation:
    """The HCMs and extensions one update brought in (Envoy: one version of the listeners)."""

    def __init__(self, number: int, hcms: dict[str, HttpConnectionManager], exts: list[Any]) -> None:
        self.number = number
        self.hcms = hcms
        self.exts = exts
        #: extensions started by this generation (the others share a running plugin's roots)
        self.owned: list[Any] = []
        #: the drain time has passed (Envoy's ``--drain-time-s``; 0 = as soon as drained)
        self.drain_over = True
        self.timer: Any = None


class ListenerUpdater:
    """Applies updates to one proxy, and retires the old listeners once drained."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.srv = proxy._server
        self.generation = 1  # the start-up config is generation 1
        self.draining: list[Generation] = []
        self._lock = threading.Lock()  # one update at a time (Envoy applies them in order)

    # ---- applying an update ------------------------------------------------------------------
    def update(self, source: str | os.PathLike[str], drain_time_s: float = 0.0, timeout: float = 120.0) -> UpdateResult:
        with self._lock:
            return self._update(source, drain_time_s, timeout)

    def _update(self, source: str | os.PathLike[str], drain_time_s: float, timeout: float) -> UpdateResult:
        srv = self.srv
        old_raw = _raw_listeners(self.proxy.config.source.text)
        twice: list[str] = []
        new_raw = _raw_listeners(_source_text(source), twice)
        changed = tuple(sorted(n for n in set(old_raw) | set(new_raw) if old_raw.get(n) != new_raw.get(n)))
        if not changed and new_raw:
            return self._twice(twice) or self._record(UpdateResult(True, "", ()))
        srv.main.run_sync(self._record_begin, changed, self.generation + 1, timeout=timeout)
        try:
            config = load_config(source)
            self._check_supported(config, changed)
        except WasmlabError as e:
            return self._reject(changed, str(e))
        hcms = {lst.name: HttpConnectionManager(srv, lst) for lst in config.http_listeners if lst.name in changed}
        gen = Generation(self.generation + 1, hcms, _factories(hcms))
        running = {_plugin_key(e) for e in self.proxy._extensions} - {None}
        gen.owned = [e for e in gen.exts if _plugin_key(e) not in running]
        for ext in gen.exts:
            if ext not in gen.owned:
                ext.proxy = srv  # shares the running plugin's root contexts (Envoy: same plugin key)
        try:
            srv.main.run_sync(self._start_main, gen, timeout=timeout)
        except WasmlabError as e:
            return self._reject(changed, self._envoy_reason(e, gen))
        for w in srv.workers:
            w.run_sync(self._start_worker, gen, w, timeout=timeout)
        result = self._twice(twice, gen.number) or self._record(UpdateResult(True, "", changed), gen.number)
        self._swap(config, gen, changed, drain_time_s)
        return result

    def _twice(self, names: list[str], generation: int | None = None) -> UpdateResult | None:
        """An update that names a listener twice (None if none is). Envoy's LDS applies the
        listeners in order and fails at the second of a name; the others, the first of that
        name among them, are applied: the update is reported rejected, yet it took effect."""
        if not names:
            return None
        for n in names:
            self.srv.log("warning", "upstream", f"lds: listener '{n}' config rejected: duplicate listener {n} found")
        # one line per failure, as Envoy's lds_api joins them
        reason = "Error adding/updating listener(s) " + "\n".join(f"{n}: duplicate listener {n} found" for n in names)
        return self._record(UpdateResult(False, reason, tuple(names)), generation)

    def _check_supported(self, config: Bootstrap, changed: tuple[str, ...]) -> None:
        tcp = {lst.name for lst in self.proxy.config.listeners if lst.hcm is None}
        tcp |= {lst.name for lst in config.listeners if lst.hcm is None}
        for name in changed:
            if name in tcp:
                raise WasmlabError(f"wasmlab updates HTTP listeners only; TCP listener '{name}' cannot change")

    def _start_main(self, gen: Generation) -> None:
        started: list[Any] = []
        try:
            for ext in gen.owned:
                ext.start_main(self.srv)
                started.append(ext)
        except BaseException:
            for ext in reversed(started):  # undo: the update is rejected whole
                self._stop_main_only(ext)
            self._drop_unused_bases()
            raise

    def _start_worker(self, gen: Generation, dispatcher: Any) -> None:
        for ext in gen.owned:
            ext.start_worker(dispatcher)

    def _swap(self, config: Bootstrap, gen: Generation, changed: tuple[str, ...], drain_time_s: float) -> None:
        """New streams use the new listeners from now on; the old ones drain."""
        proxy, srv = self.proxy, self.srv
        old_hcms = {n: srv.hcms[n] for n in changed if n in srv.hcms}
        for name in changed:
            if name in gen.hcms:
                srv.hcms[name] = gen.hcms[name]
            else:
                srv.hcms.pop(name, None)
        self.generation = gen.number
        keep = [lst for lst in config.listeners if lst.hcm is not None or lst.name in proxy._tcp_listeners]
        proxy._config = dataclasses.replace(proxy.config, source=config.source, listeners=keep)
        old_exts = self._extensions_of(old_hcms)
        # the old extensions stay listed until retired, so a close() meanwhile still stops them
        proxy._extensions[:0] = gen.exts
        old = Generation(gen.number - 1, old_hcms, old_exts)
        self.draining.append(old)
        for hcm in old_hcms.values():
            hcm.draining = True
            hcm.on_drained = lambda: srv.main.post(self._maybe_retire)
        if drain_time_s > 0:
            old.drain_over = False
            srv.main.run_sync(self._arm_drain, old, drain_time_s, timeout=30)
        self._maybe_retire()

    def _arm_drain(self, gen: Generation, seconds: float) -> None:
        def over() -> None:
            gen.drain_over = True
            self._maybe_retire()

        gen.timer = self.srv.main.create_timer(over, "listener_drain")
        gen.timer.enable(seconds)

    def _extensions_of(self, hcms: dict[str, HttpConnectionManager]) -> list[Any]:
        """The running extensions that belong to these HCMs (their filters and access loggers)."""
        ids = {id(e) for e in _factories(hcms)}
        return [e for e in self.proxy._extensions if id(e) in ids]

    # ---- draining and retiring -------------------------------------------------------------------
    def _maybe_retire(self) -> None:
        for gen in list(self.draining):
            if not gen.drain_over or any(h.streams for h in gen.hcms.values()):
                continue
            self.draining.remove(gen)
            self.srv.main.post(self._retire_main, gen)

    def _retire_main(self, gen: Generation) -> None:
        """Main thread first (as Envoy), then each worker: old roots get on_done/on_delete —
        except plugins a newer generation shares (same plugin key: Envoy keeps those)."""
        proxy = self.proxy
        gone = {id(e) for e in gen.exts}
        proxy._extensions = [e for e in proxy._extensions if id(e) not in gone]
        if proxy.closed:
            return
        keep = {_plugin_key(e) for e in proxy._extensions} - {None}
        gen.owned = [e for e in gen.exts if _plugin_key(e) is None or _plugin_key(e) not in keep]
        rec = self.srv.recorder
        if rec.enabled:
            rec.record("config", "drained", {"listeners": sorted(gen.hcms)}, None, data={"generation": gen.number})
        for ext in reversed(gen.owned):
            self._stop_main_only(ext)
        for w in self.srv.workers:
            w.post(self._retire_worker, gen, w)
        self.srv.main.post(self._drop_unused_bases)

    def _retire_worker(self, gen: Generation, dispatcher: Any) -> None:
        for ext in reversed(gen.owned):
            try:
                ext.stop_worker(dispatcher)
            except Exception as e:  # one extension's bug must not keep the others alive
                self.srv.log("error", "main", f"retiring {type(ext).__name__} on {dispatcher.name} failed: {e}")

    def _stop_main_only(self, ext: Any) -> None:
        """Stop an extension on the main thread without dropping base VMs others still use."""
        stop = getattr(ext, "stop_main_root", None) or ext.stop_main
        try:
            stop()
        except Exception as e:
            self.srv.log("error", "main", f"retiring {type(ext).__name__} failed: {e}")

    def _drop_unused_bases(self) -> None:
        if not self.srv.wasm_started:
            return
        keys = set()
        for e in self.proxy._extensions:
            plugin = getattr(e, "plugin", None)
            if plugin is not None and getattr(plugin, "compiled", None) is not None:
                keys.add(plugin.vm_config.vm_key)
        self.srv.wasm.drop_base_vms_except(keys)

    # ---- outcome ------------------------------------------------------------------------------------
    def _envoy_reason(self, error: WasmlabError, gen: Generation) -> str:
        """Envoy's words for a plugin that failed to start (``Unable to create Wasm plugin
        NAME``), after the lines Envoy logs for it: the VM failure, ``Plugin NAME failed to
        load`` and, under FAIL_CLOSED, one ``Plugin configured to fail closed failed to load``
        per thread (Envoy's canary posts it to the workers too)."""
        text = str(error)
        srv = self.srv
        for ext in gen.owned:
            plugin = getattr(ext, "plugin", None)
            if plugin is None or not plugin.where or plugin.where not in text:
                continue
            if "Wasm VM failed " in text:
                srv.log("error", "wasm", "Wasm VM failed " + text.split("Wasm VM failed ", 1)[1].split(" (", 1)[0])
            srv.log("critical", "wasm", f"Plugin {plugin.name} failed to load")
            if not plugin.fail_open:
                for _ in (srv.main, *srv.workers):
                    srv.log("critical", "wasm", "Plugin configured to fail closed failed to load")
            return f"Unable to create Wasm plugin {plugin.name}"
        return text

    def _reject(self, changed: tuple[str, ...], why: str) -> UpdateResult:
        names = ",".join(changed)
        for name in changed:
            self.srv.log("warning", "upstream", f"lds: listener '{name}' config rejected: {why}")
        return self._record(UpdateResult(False, f"Error adding/updating listener(s) {names}: {why}", changed))

    def _record_begin(self, changed: tuple[str, ...], generation: int) -> None:
        """On the main thread, before anything is built: what follows belongs to ``generation``."""
        rec = self.srv.recorder
        if rec.enabled:
            rec.record("config", "update", {"listeners": list(changed)}, None, data={"generation": generation})

    def _record(self, result: UpdateResult, generation: int | None = None) -> UpdateResult:
        rec = self.srv.recorder
        if rec.enabled:
            name = "accepted" if result.accepted else "rejected"
            gen = generation if generation is not None else self.generation
            args = {"listeners": list(result.listeners)}
            self.srv.main.run_sync(
                lambda: rec.record("config", name, args, result.reason or None, data={"generation": gen}), timeout=30
            )
        return result
