-- moonwire.loader: loads the app's own Lua files (controllers, jobs, lib/ modules). Under --dev
-- every function in them runs in LuaJIT's interpreter (jit.off on the chunk and, recursively,
-- on every function defined in it): the count hook of the handler time limit fires only there,
-- so a runaway loop gets the "Handler timed out" error reply instead of costing the worker and
-- all its clients. Without --dev the JIT compiles them as usual.
local M = {}

local dev = false
local lib_path -- app_dir/lib/?.lua;app_dir/lib/?/init.lua

-- Turns the JIT off for fn and every function defined inside it (their prototypes are nested
-- in fn's, so closures made later are covered too). Returns fn.
local function interpreted(fn)
  if dev and type(fn) == "function" then jit.off(fn, true) end
  return fn
end
M.interpreted = interpreted

-- loadfile for the app's files: the chunk, or nil and the error (file:line).
function M.loadfile(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  return interpreted(chunk)
end

-- require's search for Lua files, as package.loaders[2] does it (same package.path, same
-- order), except that a module from the app's lib/ is loaded through M.loadfile.
local function lua_searcher(name)
  local path, tried = package.searchpath(name, package.path)
  if not path then return tried end
  local chunk, err = loadfile(path)
  if not chunk then
    error(string.format("error loading module '%s' from file '%s':\n\t%s", name, path, err), 0)
  end
  if package.searchpath(name, lib_path) == path then interpreted(chunk) end
  return chunk
end

-- The functions of a module that was loaded before --dev took effect (app.lua may require
-- lib/ modules): those in its table are turned off with everything defined inside them.
-- Nested tables are followed a few levels only: a module may hold a reference to _G or to the
-- bindings, whose functions are the runtime's.
local function interpret_table(t, seen, depth)
  depth = depth or 0
  if type(t) ~= "table" or seen[t] or depth > 2 then return end
  seen[t] = true
  for _, v in pairs(t) do
    if type(v) == "function" then interpreted(v)
    elseif type(v) == "table" then interpret_table(v, seen, depth + 1) end
  end
end

-- Called once per worker by runtime.start. Under --dev, also the functions app.lua holds
-- (events, subscriber handlers, raw) and the lib/ modules it loaded already are interpreted.
function M.setup(opts)
  dev = opts.dev and jit ~= nil
  if not dev then return end
  lib_path = opts.app_dir .. "/lib/?.lua;" .. opts.app_dir .. "/lib/?/init.lua"
  package.loaders[2] = lua_searcher
  local seen = {}
  local config = opts.config or {}
  interpret_table(config.events, seen)
  interpret_table(config.subscribers, seen)
  interpreted(config.raw)
  for name, mod in pairs(package.loaded) do
    if type(name) == "string" and package.searchpath(name, lib_path) then
      if type(mod) == "function" then interpreted(mod) else interpret_table(mod, seen) end
    end
  end
end

return M
