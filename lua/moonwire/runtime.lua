-- moonwire.runtime: the Lua half of a worker, as C loads it (runtime/vm/mw_lvm.c requires this
-- module and calls start or check). start builds the bindings and wires the modules that do
-- the work, each one concern:
--   frames     the wire-protocol frames Lua writes (replies, errors, auth, queue)
--   errors     coded vs internal errors: capture, classify, log
--   router     controllers and routes: type/action -> method, one message's handling
--   scheduler  coroutines: the message pool, spawn, wait/resume/cancel, handler sites
--   hooks      the functions C calls (on_message, on_connect, ...) and the app's events
--   reload     --dev and SIGHUP reloads of controllers, jobs and lib/
--   check      `moonwire check`
local core = require "moonwire.core"
local json = require "moonwire.json"
local loader = require "moonwire.loader"
local scheduler = require "moonwire.scheduler"
local router = require "moonwire.router"
local hooks = require "moonwire.hooks"
local reload = require "moonwire.reload"

local M = {}

-- Reports a write to a global variable (a missing `local`, usually) once per name and place;
-- the write still happens: this is a warning, not a sandbox.
local function report_global_writes()
  local seen = {}
  setmetatable(_G, { __newindex = function(t, k, v)
    local level, info = 2, debug.getinfo(2, "Sl")
    while info and info.what == "C" do -- module() and other C functions: name the Lua caller
      level = level + 1
      info = debug.getinfo(level, "Sl")
    end
    local src = info and info.source or "?"
    local where = (src:sub(1, 1) == "@" and src:sub(2) or src) .. ":" .. tostring(info and info.currentline)
    local key = tostring(k) .. "@" .. where
    if not seen[key] then
      seen[key] = true
      core.log("warn", "a global variable was set (missing `local`?)", { name = tostring(k), where = where })
    end
    rawset(t, k, v)
  end })
end

-- The bindings every controller, job and event gets (self.webSocketServer, ...), and the job
-- store queue:add writes to (Redis when configured, else the database).
local function make_bindings(config, opts)
  local Server = require "moonwire.server"
  local Log = require "moonwire.log"
  local Redis = require "moonwire.redis"
  local Timer = require "moonwire.timer"
  local Database = require "moonwire.database"
  local bindings = {
    webSocketServer = Server.new({ config = config, clients = hooks.clients, fire = hooks.fire,
                                   tag = opts.worker.tag, local_only = scheduler.local_only }),
    log = Log.new(),
    config = config,
    worker = opts.worker,
    redis = core.redis_configured() and Redis.new() or nil,
    timer = Timer.new(),
    database = Database.new(),
    -- JSON arrays: emptyArray encodes as [], array(t) marks t as an array (also when empty)
    emptyArray = require("moonwire.json").emptyArray,
    array = require("moonwire.json").array,
    clock = setmetatable({}, { __index = {
      --- Milliseconds since the epoch (os.time() has only seconds).
      now = function() return core.now_ms() end,
    } }),
  }
  local Queue = require "moonwire.queue"
  local jobs = require "moonwire.jobs"
  local queue_store
  if bindings.redis then
    queue_store = require("moonwire.queue_redis").init(config, opts.worker.tag, bindings.redis)
  else
    queue_store = require("moonwire.queue_sql").init(config, opts.worker.tag, bindings.database)
  end
  bindings.queue = Queue.new(queue_store)
  bindings.queue._kick = jobs.kick
  bindings.webSocketServer._ctx.redis = bindings.redis
  return bindings, queue_store
end

-- Called once per worker with {config, app_dir, runtime_dir, dev, worker}. Returns the hooks.
function M.start(opts)
  local config = opts.config
  report_global_writes()
  loader.setup(opts) -- before anything of the app loads: --dev interprets it
  router.setup({ dev = opts.dev, raw = config.raw })
  json.set_depth(config.limits.jsonDepth)
  require("moonwire.room_options").setup(config.rooms.options)
  if core.history_setup then core.history_setup(config.limits.historyBytes) end

  local bindings, queue_store = make_bindings(config, opts)
  package.loaded["moonwire"] = bindings -- require("moonwire") from anywhere
  hooks.setup({ config = config, events = config.events, raw = config.raw, bindings = bindings,
                queue_store = queue_store, reload = reload.run })
  reload.setup({ opts = opts, config = config, bindings = bindings, queue_store = queue_store })

  local controllers = router.load_controllers(router.controller_dirs(opts), bindings)
  router.install(controllers, router.build_routes(config.routes, controllers), {})
  hooks.subscribe(config.subscribers)
  local jobs = require "moonwire.jobs"
  jobs.set_processors(jobs.load(opts.app_dir .. "/jobs"))
  local cluster = require "moonwire.cluster"
  cluster.init(config, opts.worker.tag)
  local presence = require "moonwire.presence"
  presence.init(config, opts.worker.tag)
  if cluster.enabled() then
    bindings.timer:every(config.cluster.heartbeat, function()
      cluster.heartbeat(core.room_names())
      presence.heartbeat()
      presence.reap(bindings.redis) -- waits for Redis: claims dead workers, sends their leave events
    end)
  end
  return hooks.hooks
end

-- `moonwire check`: compiles and loads every controller and job, compiles every lib/ module;
-- prints file:line errors. Returns true when everything compiles.
function M.check(opts)
  return require("moonwire.check").run(opts)
end

return M
