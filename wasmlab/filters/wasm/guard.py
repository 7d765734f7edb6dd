"""The Wasm filters' failure policy, in one place: what happens to a stream when its VM traps.

Envoy (``Extensions::Common::Wasm::Context``) calls every stream callback through the same check:
if the guest traps, the VM is failed for good (``WasmVm.fail``), the plugin is marked failed so
the next streams follow ``failure_policy`` (and FAIL_RELOAD can start a fresh VM after its backoff),
and this stream is answered by ``failStream`` — for HTTP a 503 ``wasm_fail_stream`` local reply, for
a network filter the connection closes (FAIL_OPEN lets bytes through instead). The HTTP filter and
the network filter share :class:`WasmCallGuard` for this and differ only in :meth:`_fail_stream`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ...proxywasm.vm import Context, Trapped

if TYPE_CHECKING:
    from ...host.services import ServerContext
    from ...proxywasm.manager import PluginHandle
    from ...proxywasm.plugin import PluginConfig


class FailAction(enum.Enum):
    """What Envoy's ``failStream`` decided for this stream after its VM failed."""

    CONTINUE = enum.auto()  # FAIL_OPEN (or nothing left to answer): the filter steps aside
    STOP = enum.auto()  # the stream got (or already had) its 503 / its connection closed


class WasmCallGuard:
    """Mixin for a filter that runs one Proxy-Wasm stream context: :meth:`_guarded` calls it."""

    plugin: PluginConfig
    # class-level defaults so a stream pays only for what it changes
    ctx: Context | None = None
    handle: PluginHandle | None = None
    failed = False  # this stream already hit a failed VM

    def _server(self) -> ServerContext:
        """The server the filter runs on (its Wasm host marks the plugin failed)."""
        raise NotImplementedError

    def _fail_stream(self, trapped_here: bool = False) -> FailAction:
        """Envoy ``failStream`` for this kind of filter."""
        raise NotImplementedError

    def _guarded(self, name: str, args: tuple[int, ...], fail_stream: bool = True) -> int | FailAction | None:
        """Call ``name`` on this stream's context (nothing if the module does not export it),
        or fail the stream if its VM has failed, exported or not.

        If the guest traps, the VM is already failed (``WasmVm.fail``); here the stream pays:
        the plugin is marked failed for the next streams and, with ``fail_stream``, Envoy's
        ``failStream`` answers this stream (:meth:`_fail_stream`). The caller maps the returned
        :class:`FailAction` to its callback's status.

        For callbacks most modules do not export (context create, log, done, delete) the HTTP
        filter first tests ``vm.failed is None and name not in vm.funcs``: where that holds,
        this method would do nothing, and the stream skips the call and its argument tuple."""
        ctx = self.ctx
        assert ctx is not None
        vm = ctx.vm
        if vm.failed is not None:
            # the VM failed elsewhere (a root callback, another stream) after this stream began:
            # Envoy's CHECK_FAIL_HTTP, which comes before the export check — only the deprecated
            # ``fail_open: true`` (PluginBase::fail_open_) steps aside; under any failure_policy,
            # FAIL_OPEN included, this stream fails. (A failed VM may be released already: its
            # ``funcs`` are empty, so the order matters.)
            self._trapped()
            if not fail_stream:
                return FailAction.CONTINUE
            return self._fail_stream(not self.plugin.in_flight_fail_open)
        fn = vm.funcs.get(name)
        if fn is None:  # Envoy calls nothing the module does not export
            return None
        try:
            return vm.invoke(fn, ctx, name, args)
        except Trapped:
            return self._after_trap(fail_stream)

    def _after_trap(self, fail_stream: bool = True) -> FailAction:
        """This stream's callback trapped (the VM is failed already): the stream pays."""
        self._trapped()
        return self._fail_stream(True) if fail_stream else FailAction.CONTINUE

    def _trapped(self) -> None:
        self.failed = True
        if self.handle is not None:
            self._server().wasm.mark_failed(self.handle)
