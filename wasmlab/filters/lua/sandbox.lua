-- wasmlab classroom sandbox and guard protection: runs in every Lua state right after prelude.lua,
-- before the script. Envoy has neither; see the package docstring ("Classroom sandbox").
--
--   1. guard protection (whenever a guard is on): the script cannot switch the JIT back on (compiled
--      loops never run the count hook), replace the count hook, or start a Lua pattern match that
--      would run in C for longer than the instruction budget (the hook cannot stop C code);
--   2. the sandbox (proxy option lua_sandbox, default on): no ffi, no loading C code, nothing that
--      stops, blocks or replaces the process (os.exit/execute, io.popen/read, debug.*).
local HOST = ...
local error, type, tostring, ipairs, pairs = error, type, tostring, ipairs, pairs

local guarded = (HOST.instruction_limit or 0) > 0 or (HOST.memory_limit_mb or 0) > 0
local LIFT = " (wasmlab classroom guard; set the proxy option %s to lift it)"

local function refuse(what, why, option)
  return function()
    error(what .. " is disabled in wasmlab: " .. why .. LIFT:format(option), 2)
  end
end

---------------------------------------------------------------------------------------------------
-- 1. Guard protection
---------------------------------------------------------------------------------------------------
if guarded then
  local why = "the instruction guard needs the interpreter"
  jit.on = refuse("jit.on()", why, "lua_instruction_limit=0")
  debug.sethook = refuse("debug.sethook()", "the classroom guards own the hook", "lua_instruction_limit=0")
end

-- Lua patterns backtrack in C, where the count hook never fires: "a*a*a*...b" on a run of "a"s
-- takes seconds to hours. Before a match, bound its work from the subject: a quantified item
-- (x*, x+, x-, %b) can take at most (longest run of characters it matches + 1) lengths, so a
-- match tries at most n * product(run + 1) steps (n = 1 when anchored with ^). Over the budget
-- (10 C steps per instruction of the budget), the call fails instead of stalling the worker.
local budget = (HOST.instruction_limit or 0) * 10
if budget > 0 then
  local s_find, s_match, s_gmatch, s_gsub, s_sub, s_byte = string.find, string.match, string.gmatch, string.gsub, string.sub, string.byte
  local SPECIAL = "[%^%$%*%+%?%.%(%)%[%]%%%-]"

  -- the quantified single-character items of a pattern (as patterns), and whether it is anchored
  local function quantified(p)
    local items, i, n = {}, 1, #p
    local anchored = s_sub(p, 1, 1) == "^"
    if anchored then
      i = 2
    end
    while i <= n do
      local c = s_sub(p, i, i)
      local j
      if c == "%" then
        local d = s_sub(p, i + 1, i + 1)
        if d == "b" then
          items[#items + 1] = false -- %bxy: may span the whole subject
          i = i + 4
        elseif d == "f" then
          local k = s_find(p, "]", i + 4, true) or n
          i = k + 1
        else
          j = i + 1
        end
      elseif c == "[" then
        j = i + 1
        if s_sub(p, j, j) == "^" then
          j = j + 1
        end
        repeat -- the first ] closes only after one character
          if s_sub(p, j, j) == "%" then
            j = j + 1
          end
          j = j + 1
        until j > n or s_sub(p, j, j) == "]"
      elseif c == "(" or c == ")" then
        i = i + 1
      else
        j = i
      end
      if j then
        local q = s_sub(p, j + 1, j + 1)
        if q == "*" or q == "+" or q == "-" then
          items[#items + 1] = s_sub(p, i, j)
          i = j + 2
        else
          i = j + 1
        end
      end
    end
    return items, anchored
  end

  local function longest_run(s, item)
    if item == false then
      return #s
    end
    local best = 0
    for run in s_gmatch(s, item .. "+") do
      if #run > best then
        best = #run
      end
    end
    return best
  end

  local parsed, parsed_n = {}, 0 -- pattern -> {quantified items, anchored}

  local function check(s, p, fn)
    if type(s) ~= "string" or type(p) ~= "string" or #s < 8 or not s_find(p, SPECIAL) then
      return
    end
    local entry = parsed[p]
    if entry == nil then
      if parsed_n >= 256 then -- a bounded cache: scripts use a handful of patterns
        parsed, parsed_n = {}, 0
      end
      local its, anch = quantified(p)
      entry = { its, anch }
      parsed[p], parsed_n = entry, parsed_n + 1
    end
    local items, anchored = entry[1], entry[2]
    local k = #items
    if k == 0 then
      return
    end
    local n = #s + 1
    local cost = anchored and 1 or n
    -- cheap first: with every run as long as the subject the bound may already fit
    if cost * n ^ k <= budget then
      return
    end
    for i = 1, k do
      cost = cost * (longest_run(s, items[i]) + 1)
      if cost > budget then
        error(
          ("string.%s: pattern %q on %d bytes could take over %d steps in C, where the instruction "
            .. "guard cannot stop it" .. LIFT):format(fn, p, #s, budget, "lua_instruction_limit=0"),
          3
        )
      end
    end
  end

  function string.find(s, p, init, plain)
    if not plain then
      check(s, p, "find")
    end
    return s_find(s, p, init, plain)
  end
  function string.match(s, p, init)
    check(s, p, "match")
    return s_match(s, p, init)
  end
  function string.gmatch(s, p)
    check(s, p, "gmatch")
    return s_gmatch(s, p)
  end
  function string.gsub(s, p, repl, n)
    check(s, p, "gsub")
    return s_gsub(s, p, repl, n)
  end
end

---------------------------------------------------------------------------------------------------
-- 2. The classroom sandbox
---------------------------------------------------------------------------------------------------
if HOST.sandbox then
  local OPT = "lua_sandbox=False"
  -- ffi: raw memory and any C function (a null write, libc exit) - gone from every place require looks
  for _, name in ipairs({ "ffi", "jit.util", "jit.profile" }) do
    package.loaded[name] = nil
    package.preload[name] = nil
  end
  _G.ffi = nil
  -- C code: package.loadlib and the C module searchers (require of a .so)
  package.loadlib = refuse("package.loadlib()", "it loads C code into the process", OPT)
  package.cpath = ""
  local loaders = package.loaders or package.searchers
  if loaders then
    loaders[3], loaders[4] = nil, nil
  end
  -- what stops, blocks or replaces the process
  os.exit = refuse("os.exit()", "it would stop the whole process", OPT)
  os.execute = refuse("os.execute()", "it runs a shell that can block or kill the process", OPT)
  os.remove = refuse("os.remove()", "it deletes files", OPT)
  os.rename = refuse("os.rename()", "it moves files", OPT)
  io.popen = refuse("io.popen()", "it runs a shell that can block or kill the process", OPT)
  io.read = refuse("io.read()", "reading the notebook's stdin blocks the worker", OPT)
  -- io.open/io.lines read a regular file as on Envoy (a list of keys, a JSON document); a FIFO,
  -- a device or a socket would block the worker, and writing can overwrite files
  local io_open, io_lines, may_block = io.open, io.lines, HOST.may_block
  local function may_read(name, path, mode)
    if type(mode) == "string" and mode:find("[wa+]") then
      error(name .. " is disabled in wasmlab: writing can overwrite files" .. LIFT:format(OPT), 3)
    end
    if path == nil then
      error(name .. " is disabled in wasmlab: reading stdin blocks the worker" .. LIFT:format(OPT), 3)
    end
    if type(path) == "string" and may_block(path) then
      error(name .. " is disabled in wasmlab: reading a FIFO, a device or a socket blocks the worker"
        .. LIFT:format(OPT), 3)
    end
  end
  function io.open(path, mode)
    may_read("io.open()", path, mode)
    return io_open(path, mode)
  end
  function io.lines(path, ...)
    may_read("io.lines()", path)
    return io_lines(path, ...)
  end
  io.input = refuse("io.input()", "reading stdin or a FIFO blocks the worker", OPT)
  io.output = refuse("io.output()", "it redirects the process's stdout", OPT)
  -- debug: its setters rewrite the guards' own variables; keep the read-only helpers
  local keep = { traceback = true, getinfo = true }
  for name in pairs(debug) do
    if not keep[name] then
      debug[name] = refuse("debug." .. name .. "()", "it reaches into the host's own Lua", OPT)
    end
  end
  -- jit: only its descriptive fields and jit.status()
  for name, v in pairs(jit) do
    if type(v) == "function" and name ~= "status" then
      jit[name] = refuse("jit." .. name .. "()", "it changes how the state runs", OPT)
    end
  end
  -- __gc finalizers run with hooks off: no new ones (see GC_GUARD in prelude.lua)
  local raw_newproxy, raw_rawset, getmt, setmt = newproxy, rawset, getmetatable, setmetatable
  local gc_guard = HOST.gc_guard
  function newproxy(arg)
    local u = raw_newproxy(arg)
    if arg == true then
      setmt(getmt(u), gc_guard)
    end
    return u
  end
  function rawset(t, k, v)
    if k == "__gc" then
      error("setting __gc is disabled in wasmlab: finalizers run where no guard can stop them"
        .. LIFT:format(OPT), 2)
    end
    return raw_rawset(t, k, v)
  end
  -- LuaJIT does not verify bytecode: a crafted binary chunk reads and writes any memory
  local raw_load, raw_loadfile = load, loadfile
  local function text_only(mode)
    if mode ~= nil and mode ~= "t" then
      error("loading bytecode is disabled in wasmlab: LuaJIT does not check it" .. LIFT:format(OPT), 3)
    end
    return "t"
  end
  function load(chunk, name, mode, env)
    return raw_load(chunk, name, text_only(mode), env)
  end
  function loadstring(s, name)
    return raw_load(s, name, "t")
  end
  local function named(f)
    if f == nil then
      error("reading a chunk from stdin is disabled in wasmlab: it blocks the worker" .. LIFT:format(OPT), 3)
    end
    return f
  end
  function loadfile(f, mode, env)
    return raw_loadfile(named(f), text_only(mode), env)
  end
  function dofile(f)
    local fn = assert(raw_loadfile(named(f), "t"))
    return fn()
  end
  -- require of a Lua file: the same search and messages as LuaJIT's searcher, text only
  if loaders and package.searchpath then
    local searchpath = package.searchpath
    loaders[2] = function(name)
      local path, err = searchpath(name, package.path)
      if not path then
        return err
      end
      local fn, lerr = raw_loadfile(path, "t")
      if not fn then
        error(("error loading module '%s' from file '%s':\n\t%s"):format(name, path, lerr), 2)
      end
      return fn
    end
  end
  -- collectgarbage("stop") or a huge pause keeps every request's garbage
  local gc = collectgarbage
  local allowed = { collect = true, count = true, step = true, isrunning = true }
  function collectgarbage(opt, ...)
    if opt ~= nil and not allowed[opt] then
      error(("collectgarbage(%q) is disabled in wasmlab: it would stop the memory guard from freeing"
        .. LIFT):format(tostring(opt), OPT), 2)
    end
    return gc(opt, ...)
  end
end
