"""Envoy's Lua HTTP filter (``envoy.filters.http.lua``) on lupa's LuaJIT 2.1.

Scripts written for Envoy 1.40 run unchanged: same config, same handle API (checked method by
method against the real binary), same coroutine model, same error texts and fail-open rule.
Modules: ``config`` (the ``Lua``/``LuaPerRoute`` messages), ``runtime`` (one Lua state per script
per thread, ``prelude.lua``), ``luaobject`` (exported methods, death after scope), ``handle``
(the stream handle: ``handle_driver`` runs its coroutine, ``handle_body``/``_info``/``_http``/``_util``
are its Lua methods by family), ``wrappers`` (the objects it hands out: ``wrappers_headers``,
``_metadata``, ``_stream_info``, ``_stats``), ``filter`` (factory and stream filter).

Per request the host stays out of the script's way: a hook is one call into Lua (a runner
coroutine per state starts it and makes the handle's userdata there), objects a method returns
are made in Lua from their number, and the common header calls go straight to the
``HeaderMap``; nothing a stream creates is left for Python's cycle collector. With tracing off,
a hook's first run also answers ``handle:headers()`` in Lua and writes its ``add``s down there,
handing them over with the run's answer (until its first call into the host, which gets them
first), and the Python handle is only made when a call into the host needs it: a hook that only
adds headers is one crossing and no handle. Tracing on takes the host's path for every call and
records the same events.

Classroom guards — a wasmlab addition, Envoy has none
-----------------------------------------------------
A learner's ``while true do end`` would hang a worker (and the notebook) for good, and a memory
bomb would take the kernel down. So every Lua state gets:

* an **instruction budget per run** — each start or resume of a hook coroutine (and the
  top-level load) may execute ``lua_instruction_limit`` Lua VM instructions (default 100,000,000,
  about 0.1 s here). A count hook (``debug.sethook``, every ``lua_hook_every`` = 10,000
  instructions) raises ``instruction limit exceeded (wasmlab classroom guard: ...)``, an ordinary
  Lua error: it follows Envoy's error rule (``script log:`` at error level, ``errors`` counted,
  the request continues).
  LuaJIT never runs hooks inside JIT-compiled code (a compiled ``while true do end`` ignores the
  hook), so guarded states run with ``jit.off()``: the interpreter, which honours the hook.
  The same hook reads the clock (from a run's second check on: a short run never does), and a
  run over ``lua_time_limit_s`` (10 s) of wall-clock time fails with ``time limit exceeded
  (...)``: instructions can each do much work (``s = s .. "x"`` in a long loop copies all of
  ``s`` every time; 250,000 steps are 1% of the budget and ~31 GB of copying).
  Measured cost here (``wasmlab bench``: ``lua.guard_cost.*``, ``request.lua*``; 2 cores): a hook
  run (coroutine start to end, trivial hook) costs 0.91 µs guarded vs 0.90 µs unguarded; requests/s through the
  add-header script are the same within noise (6,700/s guarded vs 6,400/s unguarded on one
  worker in the same run where the native Python add-header did 9,100/s: the Lua cost is the
  Python<->Lua crossings, not the guards); a 1e6-iteration numeric loop takes 5.5 ms
  interpreted vs 2.0 ms JIT-compiled (2.75x). After a ``pcall`` caught the guard's error, the
  hook fires on every instruction until the run ends, so the error reaches the hook's coroutine
  at once.
* a **memory cap per Lua state** — ``lua_memory_limit_mb`` (default 64 MB): the hook raises
  ``memory limit exceeded (...)`` when the state holds more; lupa's allocator refuses anything
  past the cap plus headroom (``not enough memory (wasmlab classroom guard: ...)``), so a single
  huge allocation fails inside Lua instead of aborting the process. After a failed run the state
  is collected; a state still over its cap (a global kept the garbage alive) is replaced by a
  fresh one, with a warning.

Both are ``Proxy`` options: ``Proxy.from_yaml(cfg, options={"lua_instruction_limit": 0,
"lua_memory_limit_mb": 0})`` turns them off (and leaves the JIT on). lupa releases the GIL
while Lua runs, so a looping script only holds its own worker; the others keep serving.
While a guard is on, a script cannot switch it off: ``jit.on()`` and ``debug.sethook()`` raise,
and a Lua pattern whose backtracking could outrun the budget in C, where no hook fires
(``("a"):rep(30):find(("a*"):rep(15) .. "b")`` runs for hours), fails before it starts: a
quantified item can take at most (its longest run in the subject + 1) lengths, so a match tries
at most n x the product of those; over 10 x ``lua_instruction_limit`` the call raises.

Classroom sandbox — also a wasmlab addition (``sandbox.lua``)
--------------------------------------------------------------
Envoy gives a script the whole of LuaJIT: ``ffi`` (raw memory, any C function),
``package.loadlib``, ``os.exit``, ``io``, ``debug``. In a learner's kernel one null write through
``ffi`` or ``package.loadlib("libc.so.6", "exit")()`` ends the notebook. So by default a state
has no ``ffi`` (``require("ffi")`` is "not found"), no C modules (``package.cpath`` empty, the C
searchers removed), and ``package.loadlib``, ``os.exit``, ``os.execute``, ``os.remove``,
``os.rename``, ``io.popen``, ``io.open``, ``io.read``, ``io.lines``, ``io.input``, ``io.output``,
every ``debug`` function but ``traceback`` and ``getinfo``, every ``jit`` function but
``status``, ``collectgarbage`` options other than collect/count/step/isrunning, a new ``__gc``
finalizer (LuaJIT runs finalizers with hooks off, so a loop in one is out of every guard's
reach), bytecode chunks (LuaJIT does not verify them; ``load`` runs in text mode) and chunks
read from stdin raise
``... is disabled in wasmlab: <why> (wasmlab classroom guard; set the proxy option
lua_sandbox=False to lift it)``. ``options={"lua_sandbox": False}`` is what Envoy allows: all of
the above is back, and a script can crash the kernel the way it could crash Envoy.

Hooks run on dispatcher threads with a 128 MiB C stack (``host.dispatcher.THREAD_STACK_BYTES``):
LuaJIT recurses on the C stack when C calls back into Lua (``string.gsub`` with a function
replacement that calls itself), and on a smaller stack the process segfaults before LuaJIT's own
"stack overflow" error (measured: 64 MiB crashes, 96 MiB is enough).

Other wasmlab differences: ``print`` writes to the notebook's stdout; ``require`` and relative
``package_paths`` resolve against the YAML file's folder (the bridge runs Envoy there, so both
sides find the same files).
"""
