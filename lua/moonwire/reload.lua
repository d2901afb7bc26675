-- moonwire.reload: loads the app's code again without dropping a connection (--dev on a file
-- change, SIGHUP on every worker): the controllers, app.lua routes against them, jobs/ and the
-- app's lib/ modules, and those runtime modules that keep no state. A file that fails keeps
-- its previous version serving; the failure is logged, and the worker goes on.
local core = require "moonwire.core"
local router = require "moonwire.router"

local M = {}

local state = {
  opts = nil,         -- {app_dir, runtime_dir, ...} as runtime.start got them
  config = nil,
  bindings = nil,
  queue_store = nil,
}

-- ctx = {opts, config, bindings, queue_store}: once per worker, at start.
function M.setup(ctx)
  state.opts, state.config = ctx.opts, ctx.config
  state.bindings, state.queue_store = ctx.bindings, ctx.queue_store
end

-- Runtime modules that keep no state of their own and can be loaded again; the others hold the
-- worker's state (clients, pending calls, the cluster, the queue) and need a restart.
local RELOADABLE = { ["moonwire.auth"] = true, ["moonwire.log"] = true, ["moonwire.timer"] = true,
                     ["moonwire.redis"] = true, ["moonwire.queue"] = true }

local function reload_runtime_module(name)
  local b = state.bindings
  package.loaded[name] = nil
  local ok, mod = pcall(require, name)
  if not ok then
    core.log("error", "reload: the runtime module does not load; the previous version keeps serving",
      { module = name, error = tostring(mod) })
    return
  end
  -- the bindings are instances of these modules' classes: make new ones
  if name == "moonwire.log" then b.log = mod.new()
  elseif name == "moonwire.timer" then b.timer = mod.new()
  elseif name == "moonwire.redis" and b.redis then
    b.redis = mod.new()
    b.webSocketServer._ctx.redis = b.redis
  elseif name == "moonwire.queue" then
    local q = mod.new(state.queue_store)
    q._kick = b.queue._kick
    b.queue = q
  end
end

-- Forgets the app's lib/ modules, so the next require loads them again.
local function forget_lib_modules()
  local lib = state.opts.app_dir .. "/lib/?.lua;" .. state.opts.app_dir .. "/lib/?/init.lua"
  for name in pairs(package.loaded) do
    if type(name) == "string" and package.searchpath(name, lib) then package.loaded[name] = nil end
  end
end

-- Loads every controller file again; one that fails keeps its previous version (or, new,
-- answers with an error frame). Returns the number of files that failed.
local function reload_controllers()
  local failed = 0
  local current = router.controllers()
  local controllers, broken = {}, {}
  for _, dir in ipairs(router.controller_dirs(state.opts)) do
    for _, file in ipairs(core.list_dir(dir)) do
      local name = file:sub(1, -5)
      local ok, ctrl = pcall(router.load_controller, dir .. "/" .. file, name, state.bindings)
      if ok then
        controllers[name], broken[name] = ctrl, nil
      else
        failed = failed + 1
        local old = current[name]
        core.log("error", old and "reload: a controller does not load; its previous version keeps serving"
                             or "reload: a new controller does not load; its calls get an error frame",
          { error = tostring(ctrl) })
        controllers[name] = controllers[name] or old
        if not controllers[name] then broken[name] = (tostring(ctrl):gsub("^.*/(controllers/[^/]+%.lua:)", "%1")) end
      end
    end
  end
  local ok, routes = pcall(router.build_routes, state.config.routes, controllers)
  if not ok then
    failed = failed + 1
    core.log("error", "reload: app.lua routes do not match the controllers; keeping the previous ones",
      { error = tostring(routes) })
    return failed
  end
  router.install(controllers, routes, broken)
  return failed
end

local function reload_jobs()
  local jobs = require "moonwire.jobs"
  local ok, found = pcall(jobs.load_each, state.opts.app_dir .. "/jobs")
  if not ok then
    core.log("error", "reload: jobs/ cannot be read", { error = tostring(found) })
    return 1
  end
  local failed, names = 0, {}
  for _, e in ipairs(found.errors) do
    failed = failed + 1
    names[e.name] = true
    core.log("error", "reload: a job file does not load; its previous version keeps running",
      { queue = e.name, error = e.error })
  end
  jobs.set_processors(found.processors, names)
  return failed
end

-- changed: the files --dev saw change (empty for SIGHUP: reload everything of the app).
function M.run(changed)
  local started_ms = core.now_ms()
  local runtime_lua = state.opts.runtime_dir .. "/lua/"
  for _, path in ipairs(changed or {}) do
    if path:sub(1, #runtime_lua) == runtime_lua then
      local name = path:sub(#runtime_lua + 1, -5):gsub("/", ".")
      if RELOADABLE[name] then
        reload_runtime_module(name)
      elseif package.loaded[name] ~= nil then
        core.log("warn", "reload: this runtime module keeps the worker's state; restart the server to use the change",
          { module = name })
      end
    end
  end
  forget_lib_modules()
  local failed = reload_controllers() + reload_jobs()
  core.log(failed > 0 and "warn" or "info", failed > 0 and "reloaded, with errors" or "reloaded", {
    files = #(changed or {}) > 0 and #changed or nil, failed = failed > 0 and failed or nil,
    ms = core.now_ms() - started_ms })
end

return M
