-- wasmlab prelude for envoy.filters.http.lua: runs first in every Lua state, before the script.
--
-- It gives the state three things:
--   1. what Envoy's LuaJIT build has and lupa's lacks: the Lua 5.2 compatibility set
--      (Envoy builds LuaJIT with -DLUAJIT_ENABLE_LUA52COMPAT);
--   2. the object system the handle API is built on: one userdata class per Envoy wrapper
--      (HeaderMapWrapper, BufferWrapper, ...), whose methods call into Python, as Envoy's
--      methods call into C++;
--   3. the coroutine driver and the classroom guards (a wasmlab addition).
-- The host passes a table of settings and Python callables; the chunk returns the driver.
local HOST = ...

local type, select, error, rawget, rawset, rawequal, next, tostring =
  type, select, error, rawget, rawset, rawequal, next, tostring
local getmetatable, setmetatable, newproxy, unpack = getmetatable, setmetatable, newproxy, unpack
local co_create, co_resume, co_status, co_yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local collectgarbage = collectgarbage

---------------------------------------------------------------------------------------------------
-- 1. Lua 5.2 compatibility, as in Envoy's LuaJIT
---------------------------------------------------------------------------------------------------
do
  local lua_pairs, lua_ipairs, running = pairs, ipairs, coroutine.running
  local function meta(t, name)
    local mt = getmetatable(t)
    if type(mt) == "table" then
      return rawget(mt, name)
    end
  end
  -- pairs()/ipairs() honour __pairs/__ipairs (Envoy's `pairs(headers)` depends on it)
  local function honouring(event, builtin)
    return function(t)
      local f = meta(t, event)
      if f then
        return f(t)
      end
      return builtin(t)
    end
  end
  pairs = honouring("__pairs", lua_pairs)
  ipairs = honouring("__ipairs", lua_ipairs)
  table.unpack = table.unpack or unpack
  table.pack = table.pack or function(...)
    return { n = select("#", ...), ... }
  end
  package.searchers = package.searchers or package.loaders
  -- 5.2: coroutine.running() also says whether this is the main coroutine
  function coroutine.running()
    local co = running()
    return co, co == nil
  end
end

-- print() goes to the notebook's stdout (Envoy: the process's stdout)
do
  local concat, host_print = table.concat, HOST.print
  function print(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
      parts[i] = tostring((select(i, ...)))
    end
    host_print(concat(parts, "\t"))
  end
end

-- lupa's `python` module is no part of Envoy's state: a script sees neither the global nor the
-- loaded module (the host reaches Lua through its own C calls, not through them)
python = nil
package.loaded.python = nil

-- os.exit() and the rest of what could stop the process: sandbox.lua, run after this chunk

-- require(): LuaJIT's search paths with "./" meaning the YAML file's folder, after package_paths
package.path = HOST.package_path
package.cpath = HOST.package_cpath

---------------------------------------------------------------------------------------------------
-- 2. Objects: userdata with a metatable of methods, each calling a Python function
---------------------------------------------------------------------------------------------------
-- Every object handed to a script is a userdata (as in Envoy); OBJ maps it to the number of its
-- Python object, UD maps the number back to the userdata (weak: Lua collects userdata the script
-- dropped; one still held is found again, so asking twice gives the same value).
local OBJ = setmetatable({}, { __mode = "k" })
local UD = setmetatable({}, { __mode = "v" })
local PROTO = {} -- class name -> prototype userdata
local PROTOS = {} -- class number (the host's order) -> prototype userdata

-- The first run of a hook started with tracing off (section 2b below): its handle, the handle's
-- number, and the userdata of its own header map once asked for (number -first_id).
local first_run = nil
local first_id = 0
local first_headers = nil
local first_run_headers -- set in section 2b

-- The userdata of object `id` of class number `cls`, made here (no call back into the host).
local function wrap(cls, id)
  if id == -first_id and first_run ~= nil then
    return first_run_headers()
  end
  local u = UD[id]
  if u == nil then
    u = newproxy(PROTOS[cls])
    OBJ[u] = id
    UD[id] = u
  end
  return u
end

local getinfo = debug.getinfo
local arm -- set below, with the guards: a fresh budget for each run

-- The host resumed the script: re-arm the budget, hand the values on.
local function resumed(...)
  arm()
  return ...
end

-- LuaJIT's own argument error (lj_err_argmsg), raised for the Lua method that called us: the
-- function name comes from the call site, a method call does not count `self`, and a tail call
-- leaves no name ('?'). `narg` counts stack slots from `self` = 1.
local function argerror(narg, detail)
  local ar = getinfo(2, "n")
  local name = ar and ar.name or "?"
  if ar and ar.namewhat == "method" then
    narg = narg - 1
    if narg == 0 then
      error("calling '" .. name .. "' on bad self (" .. detail .. ")", 3)
    end
  end
  error("bad argument #" .. narg .. " to '" .. name .. "' (" .. detail .. ")", 3)
end

-- rawlen (Lua 5.2; Envoy's LuaJIT has it with LUAJIT_ENABLE_LUA52COMPAT, lupa's has not): the
-- length of a table or string without calling __len (this build's `#` never calls it on a table)
if rawlen == nil then
  function rawlen(...)
    local v = ...
    local t = type(v)
    if t ~= "table" and t ~= "string" then
      argerror(1, "table expected, got " .. (select("#", ...) == 0 and "no value" or t))
    end
    return #v
  end
end

-- A Python method returns a status first: 0 = done (results follow), 1 = error (message
-- follows; raised at the script's line, like luaL_error), 2 = wait: the script yields to the
-- host, which resumes it with the method's results, 3 = done with no value at all (Envoy's
-- `return 0`), 4 = error without a position (LuaJIT's own errors such as "invalid key to 'next'"),
-- 5 = argument error (stack slot, "string expected, got nil"), 6 = done, the result is the host
-- object numbered b of class number a (made into its userdata here).
local function fail(s, a, b)
  if s == 1 then
    error(a, 3)
  elseif s == 4 then
    error(a, 0)
  end
end

-- Adds written down (a speed-up with tracing off; nothing a script can observe changes). From
-- the start of a hook's first run until its first call into the host, `add(name, value)` with two
-- strings on the handle's own header map (`first_run` below) is only written down here, and the
-- run's answer hands the pairs to the host, which adds them as its add would: one crossing for
-- all of them instead of one per add. The first call into the host (any method, a pairs() step,
-- a bodyChunks() step) first replays the pairs through the host's add, in order, and ends the
-- writing down for this run: the host sees every edit before anything else the script does, and
-- from then on judges each add itself (e.g. a map being iterated refuses them). Pure Lua in
-- between cannot read the host's headers, so it cannot tell.
local WRITE_CAP = 128 -- names + values kept before replaying (adding in a loop stays small)
local written = {} -- name1, value1, name2, value2, ... (reused; slots past nwritten are stale)
local nwritten = 0
local writing = nil -- the number of the own map whose adds are written down, or nil
local host_add -- HeaderMapWrapper's add in the host (set by thunk)

local nstale = 0 -- slots the last answer handed over, cleared when the next step starts

local function replay()
  -- the count goes first: a guard (instruction or memory limit) that trips inside the loop
  -- ends the run, and its answer must not hand the same pairs over again
  local n = nwritten
  nwritten = 0
  for i = 1, n, 2 do
    local k, v = written[i], written[i + 1]
    written[i], written[i + 1] = nil, nil -- (a handed-over string is not kept alive here)
    -- cannot fail otherwise: the map is live, not iterated, not yet forwarded; these are strings
    host_add(writing, k, v)
  end
end

-- Called before every call into the host while a run writes down.
local function stop_writing()
  if nwritten > 0 then
    replay()
  end
  writing = nil
end

-- HeaderMapWrapper's add: written down while it may be (see above), else the host's.
local function add_thunk(fn, check_self)
  host_add = fn
  return function(self, ...)
    if writing ~= nil then
      local k, v = ...
      -- (while writing down, the run's own map is `first_headers`: compared, not looked up;
      -- rawequal, so that an __eq a script set on the class is not called)
      if rawequal(self, first_headers) and self ~= nil and type(k) == "string" and type(v) == "string" then
        if nwritten >= WRITE_CAP then
          replay()
        end
        written[nwritten + 1], written[nwritten + 2] = k, v
        nwritten = nwritten + 2
        return
      end
      stop_writing()
    end
    local s, a, b = fn(check_self(self), ...)
    if s == 0 or s == 3 then
      return
    elseif s == 5 then
      argerror(a, b)
    elseif s ~= 2 then
      fail(s, a, b)
    end
    return resumed(co_yield())
  end
end

local function thunk(class, name, fn, nret, mt)
  local self_expected = HOST.cpp_names[class] or class
  local function check_self(self)
    local o = OBJ[self]
    if o == nil or getmetatable(self) ~= mt then
      local t = self == nil and "no value" or type(self)
      local ar = getinfo(2, "n")
      local fname = ar and ar.name or "?"
      error("bad argument #1 to '" .. fname .. "' (" .. self_expected .. " expected, got " .. t .. ")", 3)
    end
    return o
  end
  if class == "HeaderMapWrapper" and name == "add" then
    return add_thunk(fn, check_self)
  end
  if nret == 0 or nret == 1 or nret == 2 then
    -- one body for 0, 1 and 2 results: the Python side only answers 6 for nret 1
    return function(self, ...)
      if writing ~= nil then
        stop_writing()
      end
      local s, a, b = fn(check_self(self), ...)
      if s == 0 then
        if nret == 1 then
          return a
        elseif nret == 2 then
          return a, b
        end
        return
      elseif s == 6 then
        return wrap(a, b)
      elseif s == 3 then
        return
      elseif s == 5 then
        argerror(a, b)
      elseif s ~= 2 then
        fail(s, a, b)
      end
      return resumed(co_yield())
    end
  end
  -- nret == "iter": the method returns a Python iterator object; the script gets a function
  local step = HOST.iter_next
  return function(self, ...)
    if writing ~= nil then
      stop_writing()
    end
    local s, it, b = fn(check_self(self), ...)
    if s == 5 then
      argerror(it, b)
    elseif s ~= 0 then
      fail(s, it, b)
    end
    return function()
      if writing ~= nil then
        stop_writing()
      end
      local s2, k, v = step(it)
      if s2 == 1 then
        error(k, 2)
      end
      return k, v
    end
  end
end

-- 2b. handle:headers() during the first run of a hook started with tracing off: the handle's own
-- header map is host object number -(handle number), made on the host side when a method of it
-- is first called. Answered here, without a call into the host; the runner sets `first_run` to
-- the handle at the start and puts back what it was when the run ends (the map dies with it;
-- later runs ask the host). A run started inside another one (from a call into the host) hides
-- the outer handle while it lasts: the outer's headers() then asks the host, which answers the
-- same map.
local HANDLE_CLASS = 1 -- StreamHandleWrapper's class number
local HEADERS_CLASS = HOST.headers_class -- HeaderMapWrapper's

-- The map's userdata is kept in `first_headers`, not in UD (a speed-up: one weak-table entry less
-- per hook). Only this run can be handed the number -first_id (the host's map of it dies with
-- the run), so `wrap` answers it from here; a run nested in this one parks it in UD (see step).
function first_run_headers()
  local u = first_headers
  if u == nil then
    u = newproxy(PROTOS[HEADERS_CLASS])
    OBJ[u] = -first_id
    first_headers = u
  end
  return u
end

local function own_headers(generic)
  return function(self, ...)
    if first_run ~= nil and self == first_run then
      return first_run_headers()
    end
    return generic(self, ...)
  end
end

local driver = {}

-- Classroom sandbox: a metatable for metatables that refuses a new __gc. LuaJIT runs finalizers
-- with hooks off, so a `while true do end` in a __gc set on a wrapper class hung its worker for
-- good, out of the guards' reach. sandbox.lua uses it for newproxy(true) and rawset.
local GC_GUARD = {
  __metatable = "protected by wasmlab's classroom sandbox",
  __newindex = function(t, k, v)
    if k == "__gc" then
      error("setting __gc is disabled in wasmlab: finalizers run where no guard can stop them "
        .. "(wasmlab classroom guard; set the proxy option lua_sandbox=False to lift it)", 2)
    end
    rawset(t, k, v)
  end,
}
HOST.gc_guard = GC_GUARD

-- define("HeaderMapWrapper", 2, {add = {fn, 0}, ...}): one metatable per wrapper class; its
-- __index is itself, so getmetatable(obj) lists the methods, as in Envoy.
function driver.define(class, number, methods)
  local proto = newproxy(true)
  local mt = getmetatable(proto)
  mt.__index = mt
  for name, spec in next, methods do
    mt[name] = thunk(class, name, spec[1], spec[2], mt)
  end
  if number == HANDLE_CLASS then
    mt.headers = own_headers(mt.headers)
  end
  if HOST.sandbox then
    setmetatable(mt, GC_GUARD)
  end
  PROTO[class] = proto
  PROTOS[number] = proto
end

-- The userdata of host object `id` of class number `cls` (the same one while Lua holds it).
driver.new = wrap

-- A closure that calls a Python function with a fixed first argument (body chunk iterators).
function driver.closure(fn, arg)
  return function()
    if writing ~= nil then
      stop_writing()
    end
    local s, a = fn(arg)
    if s == 0 then
      return a
    elseif s == 3 then
      return
    elseif s == 1 then
      error(a, 2)
    end
    return resumed(co_yield())
  end
end

---------------------------------------------------------------------------------------------------
-- 3. Classroom guards (wasmlab addition): an instruction budget per run and a memory cap
---------------------------------------------------------------------------------------------------
local budget = HOST.instruction_limit or 0 -- instructions per run (0 = unlimited)
local every = HOST.hook_every or 10000
local mem_soft_kb = (HOST.memory_limit_mb or 0) * 1024
local left = 0 -- hook ticks left in this run
local limit_msg = HOST.instruction_message
local memory_msg = HOST.memory_message
-- wall-clock seconds per run, read only by the instruction guard's hook (a run shorter than one
-- hook interval never reads the clock): instructions can be slow, `s = s .. "x"` copies all of s
local time_limit = budget > 0 and (HOST.time_limit_s or 0) or 0
local time_msg = HOST.time_message
local monotonic = HOST.monotonic
local started = nil -- the clock at this run's first check
local guarded = budget > 0 or mem_soft_kb > 0
local sethook = debug.sethook
local hook
local RUNNERS = setmetatable({}, { __mode = "k" }) -- the runner coroutines (section 4): exempt from the guards like the main thread
local tripped = false -- over budget: the hook now fires on every instruction

-- The level for error() that names the script's line: the first frame out from the hook that is
-- not this prelude's own Lua (a thunk, the written-down adds) — where the script called in.
local PRELUDE_SOURCE = debug.getinfo(1, "S").source
local getinfo = debug.getinfo
local function script_level()
  local level = 3 -- (from inside this function: 2 is the hook, 3 the code it interrupted)
  while true do
    local info = getinfo(level, "S")
    if info == nil then
      return 2 -- no script frame (should not happen): the interrupted code, as before
    end
    if info.source ~= PRELUDE_SOURCE and info.what ~= "C" then
      return level - 1 -- (as seen from the hook)
    end
    level = level + 1
  end
end

if guarded then
  -- LuaJIT never calls hooks inside compiled traces, so a `while true do end` loop that got
  -- compiled would run forever: run this state in the interpreter.
  jit.off()
  jit.flush()
  budget = budget > 0 and math.max(1, math.floor(budget / every)) or math.huge
  local running = coroutine.running
  hook = function()
    -- scripts run in coroutines; the host's own Lua (this prelude, on the main thread or in the
    -- runner coroutine) is exempt
    local co = running()
    if co == nil or RUNNERS[co] then
      return
    end
    if tripped then
      -- after a pcall caught the first error: fail again at once, one frame further out
      error(limit_msg, script_level())
    end
    left = left - 1
    local late = false
    if time_limit > 0 then
      local now = monotonic()
      if started == nil then
        started = now
      else
        late = now - started > time_limit
      end
    end
    if left < 0 or late or (mem_soft_kb > 0 and collectgarbage("count") > mem_soft_kb) then
      local msg = left < 0 and limit_msg or (late and time_msg) or memory_msg
      limit_msg = msg
      tripped = true
      sethook(hook, "", 1)
      error(msg, script_level())
    end
  end
  sethook(hook, "", every)
end

-- A fresh budget for the next run (one start or resume).
function arm()
  left = budget
  started = nil
  if tripped then
    tripped = false
    limit_msg = HOST.instruction_message
    sethook(hook, "", every)
  end
end

---------------------------------------------------------------------------------------------------
-- 4. Loading the script and driving hook coroutines
---------------------------------------------------------------------------------------------------
local function after_error()
  -- a failed run may leave a lot of garbage (a memory bomb): free it while still protected
  if tripped then
    tripped = false
    limit_msg = HOST.instruction_message
    sethook(hook, "", every)
  end
  if mem_soft_kb > 0 and collectgarbage("count") > mem_soft_kb / 2 then
    collectgarbage("collect")
  end
end

-- LuaJIT's interpreter (the guards turn the JIT off) raises "stack overflow" without the position
-- the compiled code Envoy runs gives it: add where the script was when the stack ran out. (A
-- host method's "stack overflow", raised from this prelude, has no position on Envoy either.)
local function overflow_position(co, e)
  if e ~= "stack overflow" then
    return e
  end
  for level = 0, 20 do
    local ar = getinfo(co, level, "Sl")
    if ar == nil or ar.source == PRELUDE_SOURCE then
      break
    end
    if ar.what ~= "C" and ar.currentline > 0 then
      return ar.short_src .. ":" .. ar.currentline .. ": " .. e
    end
  end
  return e
end

local function message(err)
  if type(err) == "string" then
    return err
  end
  return nil -- Envoy: "unspecified lua error"
end

-- Load the script with loadstring(code): the chunk name is the code itself, so messages carry
-- Envoy's prefixes ([string "..."]:N:). Returns nil or the error message.
function driver.load(code)
  local f, err = loadstring(code)
  if not f then
    return err
  end
  arm()
  -- in a coroutine, so the guards apply (Envoy: lua_pcall on the state)
  local co = co_create(f)
  local ok, e = co_resume(co)
  if not ok then
    e = overflow_position(co, e)
    co = nil
    after_error()
    return message(e) or "unspecified lua error"
  end
  if co_status(co) ~= "dead" then
    -- top-level code yielded: Envoy runs the chunk with lua_pcall, where LuaJIT refuses the
    -- yield at the line that called it
    local ar = getinfo(co, 1, "Sl")
    local where = ar and ar.currentline and ar.currentline > 0 and (ar.short_src .. ":" .. ar.currentline .. ": ")
    return (where or "") .. "attempt to yield across C-call boundary"
  end
  return nil
end

-- Only check that the script compiles (the config parser uses it).
function driver.compile(code)
  local _, err = loadstring(code) -- nil, message when it does not compile
  return err
end

function driver.global(name)
  local v = rawget(_G, name)
  if type(v) == "function" then
    return v
  end
  return nil
end

-- The body of a hook coroutine: arm the budget, then run the hook (for running a function as a
-- coroutine straight from Python; the filter uses the runner below).
function driver.body(fn)
  return function(...)
    arm()
    return fn(...)
  end
end

-- Hook coroutines (Envoy: lua_newthread per envoy_on_request/envoy_on_response call). The host
-- drives them through one long-lived runner coroutine per state, one step per host call:
-- `runner.send((op, id, ...))` with op 1 = start envoy_on_request, 2 = start envoy_on_response
-- (the handle is host object `id`; 4 and 5: the same with tracing off, so that handle:headers()
-- is answered here during the first run), 0 = resume the hook coroutine of handle `id` with `...`,
-- 3 = forget it (the stream ended while it waited). A step answers 0 = the hook finished,
-- 1 = it yielded (kept in COS until resumed), 2 = it failed (then the message, if a string).
-- The runner is a coroutine, not a function the host calls on the main thread, because lupa
-- resets the main thread's stack whenever Python calls into Lua (as a method called from the
-- script may do), which would corrupt a resume running there.
local HOOKS = {}
local COS = {} -- handle number -> its suspended hook coroutine

function driver.set_hooks(on_request, on_response)
  HOOKS[1], HOOKS[2], HOOKS[4], HOOKS[5] = on_request, on_response, on_request, on_response
end

-- `held`: COS holds the coroutine (a resume). A start's has no entry, and none is cleared for
-- it: LuaJIT makes a table key even for a nil stored under a new one, so clearing would leave a
-- dead key in COS per hook, for the next rehash to sweep.
local function finish(co, id, held, ok, e)
  if ok then
    if co_status(co) == "dead" then
      if held then
        COS[id] = nil
      end
      return 0
    end
    COS[id] = co
    return 1
  end
  -- a dead coroutine's stack would keep its garbage alive: drop it before collecting
  if held then
    COS[id] = nil
  end
  e = overflow_position(co, e)
  co = nil
  after_error()
  local t = type(e)
  if t == "string" or t == "number" then
    return 2, tostring(e)
  end
  return 2 -- not a string: "unspecified lua error"
end

local function step(op, id, ...)
  writing, nwritten = nil, 0 -- (whatever a failed runner left)
  if nstale > 0 then -- the strings the last answer handed over: not kept alive past it
    for i = 1, nstale do
      written[i] = nil
    end
    nstale = 0
  end
  if op == 0 then
    local co = COS[id]
    if co == nil then
      return 0 -- it finished already (a script that waited inside its own coroutine)
    end
    arm()
    return finish(co, id, true, co_resume(co, ...))
  elseif op == 3 then
    COS[id] = nil
    return 0
  end
  local co = co_create(HOOKS[op])
  local u = newproxy(PROTOS[HANDLE_CLASS])
  OBJ[u] = id
  local outer, outer_id = first_run, first_id
  if op > 3 then
    if outer ~= nil then
      UD[-outer_id] = first_headers -- nested: the outer's map may now be asked for by number
    end
    first_run, first_id, first_headers = u, id, nil
    writing = -id
  end
  arm()
  local ok, e = co_resume(co, u)
  if op > 3 then
    first_run, first_id = outer, outer_id
    first_headers = outer and UD[-outer_id] -- (made during the nested run, or parked above)
  end
  return finish(co, id, false, ok, e) -- a tail call: nothing here keeps a failed coroutine's garbage alive
end

-- A step's answer to the host; after a first run that wrote adds down, the pairs follow.
local function answer(s, m)
  writing = nil
  if nwritten > 0 then
    local n = nwritten
    nwritten = 0
    if n == 2 then
      -- one add, the usual: handed over from locals, so no slot is left to clear at the next step
      local k, v = written[1], written[2]
      written[1], written[2] = nil, nil
      return co_yield(s, m, k, v)
    end
    nstale = n
    return co_yield(s, m, unpack(written, 1, n))
  end
  if m == nil then
    return co_yield(s)
  end
  return co_yield(s, m)
end

function driver.runner(...)
  RUNNERS[coroutine.running()] = true
  local s, m = step(...)
  while true do
    s, m = step(answer(s, m))
  end
end

-- After a failed run: a memory bomb may have left a lot of garbage; free it.
driver.after_error = after_error

function driver.memory_kb()
  return collectgarbage("count")
end

function driver.collect()
  collectgarbage("collect")
  return collectgarbage("count")
end

-- Lua tables from Python lists: {k1, v1, k2, v2, ...} -> {[k1] = v1, ...}
function driver.table_from_pairs(flat)
  local t = {}
  for i = 1, #flat, 2 do
    t[flat[i]] = flat[i + 1]
  end
  return t
end

-- Header tables given to respond()/httpCall(), flattened in Lua's own iteration order (which is
-- the order Envoy adds them in). Returns the flat list and its length, or nil, what went wrong
-- ("number_key", "key", "value", "item") and the offending Lua type.
function driver.header_pairs(t)
  local out, n = {}, 0
  for k, v in next, t do
    local kt = type(k)
    if kt == "number" then
      return nil, "number_key", kt
    elseif kt ~= "string" then
      return nil, "key", kt
    end
    local vt = type(v)
    if vt == "table" then
      for _, item in next, v do
        local it = type(item)
        if it ~= "string" and it ~= "number" then
          return nil, "item", it
        end
        out[n + 1], out[n + 2], n = k, tostring(item), n + 2
      end
    elseif vt == "string" or vt == "number" then
      out[n + 1], out[n + 2], n = k, tostring(v), n + 2
    else
      return nil, "value", vt
    end
  end
  return out, n
end

-- Options table of httpCall(): {key, value, ...} in iteration order, or nil and the key's type.
function driver.option_pairs(t)
  local out, n = {}, 0
  for k, v in next, t do
    out[n + 1], out[n + 2], n = k, v, n + 2
  end
  return out, n
end

return driver
