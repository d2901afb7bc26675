-- moonwire.config: the one definition of the configuration. Defaults, the schema that
-- validates app.lua, the deep merge, and the environment/flag overrides all live here so the
-- supervisor (which needs host/port) and every worker (which needs events, routes) agree.
local M = {}

-- Schema: a string names the expected type; a table is a nested section.
-- "list" = array table, "posint" = integer > 0, "nonneg" = number >= 0.
local schema = {
  host = "string", port = "port", path = "string", workers = "workers",
  routes = "list",
  auth = { secret = "string", algorithm = "string", required = "boolean", leeway = "nonneg",
           issuer = "string", audience = "string", publicKeyFile = "string", refreshBefore = "nonneg" },
  redis = { url = "string", prefix = "string", timeout = "posnum" },
  database = { url = "string" },
  rooms = { clientCanJoinMultipleRooms = "boolean", maxPerClient = "posint", options = "roomoptions" },
  inactivity = { checkInterval = "posnum", maxInactive = "posnum" },
  heartbeat = { interval = "posnum", timeout = "posnum" },
  cluster = { heartbeat = "posnum" },
  limits = { maxMessageSize = "posint", maxFragments = "posint", maxHeaderBytes = "posint",
             handshakeTimeout = "posnum", messageTimeout = "posnum", maxConnections = "posint", sendQueueBytes = "posint",
             rate = { messages = "posnum", per = "posnum", burst = "posnum" },
             jsonDepth = "posint", handlerTimeout = "posnum", luaMemory = "posint",
             shutdownTimeout = "posnum", historyBytes = "posint" },
  allowedOrigins = "list", trustedProxies = "list",
  events = { onServerStarted = "function", onConnect = "function", onDisconnect = "function",
             onJoinRoom = "function", onLeaveRoom = "function", onAuthenticate = "function" },
  subscribers = "list",
  raw = "function",
  dev = "boolean",
  log = { level = "loglevel", format = "logformat" },
  api = { key = "string", rate = { requests = "posnum", per = "posnum", burst = "posnum" } },
  compression = { enabled = "boolean", threshold = "count", level = "zlevel" },
}

local function defaults()
  return {
    host = "0.0.0.0", port = 8080, path = "/ws", workers = 1,
    routes = {},
    auth = { algorithm = "HS256", required = false, leeway = 30, refreshBefore = 30 },
    redis = { prefix = "moonwire:", timeout = 5 },
    database = {},
    rooms = { clientCanJoinMultipleRooms = true, maxPerClient = 128, options = {} },
    inactivity = { checkInterval = 60, maxInactive = 300 },
    heartbeat = { interval = 25, timeout = 10 },
    cluster = { heartbeat = 5 },
    limits = { maxMessageSize = 65536, maxFragments = 1024, maxHeaderBytes = 8192,
               handshakeTimeout = 10, messageTimeout = 30, sendQueueBytes = 1048576,
               rate = { messages = 100, per = 1, burst = 200 },
               jsonDepth = 32, handlerTimeout = 5, luaMemory = 268435456, shutdownTimeout = 8,
               historyBytes = 67108864 },
    events = {},
    subscribers = {},
    dev = false,
    log = { level = "info", format = "text" },
    api = { rate = { requests = 1000, per = 1, burst = 2000 } }, -- per client address and worker
    compression = { enabled = false, threshold = 256, level = 1 },
  }
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return table.concat(keys, ", ")
end

local function is_list(v)
  if type(v) ~= "table" then return false end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

local checks = {
  string = function(v) return type(v) == "string", "a string" end,
  boolean = function(v) return type(v) == "boolean", "true or false" end,
  ["function"] = function(v) return type(v) == "function", "a function" end,
  list = function(v) return is_list(v), "a list (array table)" end,
  posint = function(v) return type(v) == "number" and v > 0 and v % 1 == 0, "a positive integer" end,
  posnum = function(v) return type(v) == "number" and v > 0, "a positive number" end,
  nonneg = function(v) return type(v) == "number" and v >= 0, "a number >= 0" end,
  port = function(v) return type(v) == "number" and v % 1 == 0 and v >= 0 and v <= 65535,
                            "a port number (0-65535)" end,
  workers = function(v)
    return (type(v) == "number" and v >= 1 and v % 1 == 0) or v == "auto",
           "a positive integer or \"auto\""
  end,
  loglevel = function(v)
    return v == "debug" or v == "info" or v == "warn" or v == "error",
           "one of debug, info, warn, error"
  end,
  logformat = function(v) return v == "text" or v == "json", "\"text\" or \"json\"" end,
  count = function(v) return type(v) == "number" and v >= 0 and v % 1 == 0, "an integer >= 0" end,
  zlevel = function(v)
    return type(v) == "number" and v >= 0 and v <= 9 and v % 1 == 0, "an integer from 0 to 9 (zlib's level)"
  end,
}

-- An error that stops at once (app.lua cannot be read at all).
local function fail(key, msg)
  error({ config_error = "config error: " .. key .. " " .. msg }, 0)
end

-- An error that is collected: a newcomer fixing app.lua wants every mistake in one run, not
-- one per restart. errors holds {key=, text=}; load() sorts them by key.
local function add_error(errors, key, msg)
  errors[#errors + 1] = { key = key, text = "config error: " .. key .. " " .. msg }
end

-- Returns a copy of value without the keys that fail spec (each one added to errors), so the
-- checks after it see the defaults there and can still report their own errors.
local function validate(value, spec, prefix, errors)
  local clean = {}
  for k, v in pairs(value) do
    local key = prefix .. tostring(k)
    local want = type(k) == "string" and spec[k] or nil
    if want == nil then
      add_error(errors, key, "is not a known setting (valid keys" ..
        (prefix ~= "" and " in " .. prefix:sub(1, -2) or "") .. ": " .. sorted_keys(spec) .. ")")
    elseif want == "roomoptions" then -- a list of entries, checked by their own module
      clean[k] = require("moonwire.room_options").validate(v, key, function(at, msg)
        add_error(errors, at, msg)
      end)
    elseif type(want) == "table" then
      if type(v) ~= "table" then add_error(errors, key, "must be a table, got " .. type(v))
      else clean[k] = validate(v, want, key .. ".", errors) end
    else
      local ok, what = checks[want](v)
      if ok then clean[k] = v
      else
        local got = type(v) == "string" and ("\"" .. v .. "\"") or type(v) == "number" and tostring(v) or type(v)
        add_error(errors, key, "must be " .. what .. ", got " .. got)
      end
    end
  end
  return clean
end

local function merge(into, from)
  for k, v in pairs(from) do
    -- a section with defaults (limits, auth...) is merged into, also by an empty table;
    -- lists (routes) and empty defaults (events) are replaced
    if type(v) == "table" and type(into[k]) == "table" and not is_list(into[k]) then
      merge(into[k], v)
    else
      into[k] = v
    end
  end
  return into
end

-- Overrides from the command line and the environment: key -> config path and converter.
local override_paths = {
  host = { "host" }, port = { "port" }, path = { "path" }, workers = { "workers" },
  redis = { "redis", "url" }, database = { "database", "url" }, jwt_secret = { "auth", "secret" },
  dev = { "dev" }, log_level = { "log", "level" }, log_format = { "log", "format" },
  api_key = { "api", "key" },
  compression = { "compression", "enabled" },
}

local function convert(name, spec_type, raw, origin)
  if spec_type == "port" or spec_type == "posint" then
    local n = tonumber(raw)
    if not n then return nil, "must be a number, got \"" .. raw .. "\"" end
    return n
  elseif spec_type == "workers" then
    if raw == "auto" then return "auto" end
    local n = tonumber(raw)
    if not n then return nil, "must be a number or auto, got \"" .. raw .. "\"" end
    return n
  elseif spec_type == "boolean" then
    return raw ~= "0" and raw ~= "" and raw ~= "false" and raw ~= "no"
  end
  return raw
end

local function spec_of(path)
  local s = schema
  for _, p in ipairs(path) do s = s[p] end
  return s
end

-- Loads APP_DIR/app.lua (optional), validates it, merges it over the defaults and applies the
-- overrides ({name = {value=, origin=}}). Returns the config table; raises a message naming the
-- offending key on any error.
function M.load(app_dir, overrides)
  local cfg = defaults()
  local file = app_dir .. "/app.lua"
  local ok, result = pcall(function()
    local fh = io.open(file, "r")
    local user = {}
    if fh then
      fh:close()
      local chunk, err = loadfile(file)
      if not chunk then fail("app.lua", "does not compile: " .. err) end
      local ran, value = pcall(chunk)
      if not ran then fail("app.lua", "raised an error: " .. tostring(value)) end
      if value == nil then value = {} end
      if type(value) ~= "table" then fail("app.lua", "must return a table, got " .. type(value)) end
      user = value
    end
    local errors = {}
    merge(cfg, validate(user, schema, "", errors))
    local function bad(key, msg) add_error(errors, key, msg) end
    for name, o in pairs(overrides or {}) do
      local path = override_paths[name]
      if path then
        local target = cfg
        for i = 1, #path - 1 do target = target[path[i]] end
        local v, why = convert(name, spec_of(path), o.value, o.origin)
        local good, what = checks[spec_of(path)](v)
        if why then
          bad(o.origin, why)
        elseif not good then
          bad(o.origin, "must be " .. what .. ", got \"" .. o.value .. "\"")
        else
          target[path[#path]] = v
        end
      end
    end
    -- --dev means debug logs unless a level was chosen explicitly
    if cfg.dev and not (overrides and overrides.log_level) and not (type(user.log) == "table" and user.log.level) then
      cfg.log.level = "debug"
    end
    -- cross-field checks
    if cfg.auth.secret and #cfg.auth.secret < 32 and cfg.auth.algorithm:sub(1, 2) == "HS" then
      bad("auth.secret", "must be at least 32 bytes long for " .. cfg.auth.algorithm ..
        " (a short HMAC secret can be brute-forced); got " .. #cfg.auth.secret)
    end
    if cfg.redis.url and not cfg.redis.url:match("^redis://") then
      bad("redis.url", "must look like redis://host:port/db, got \"" ..
        (cfg.redis.url:gsub("//([^:/@]*):[^@/]*@", "//%1:***@")) .. "\"")
    end
    if #cfg.subscribers > 0 and not cfg.redis.url then
      bad("subscribers", "need Redis: start with --redis redis://host:port or set redis.url")
    end
    if cfg.limits.rate.burst < 1 then
      bad("limits.rate.burst", "must be at least 1 (a bucket that never holds a whole token refuses everything)")
    end
    if cfg.auth.secret and #cfg.auth.secret > 4095 then
      bad("auth.secret", "must be at most 4095 bytes long")
    end
    if cfg.api.key and #cfg.api.key < 16 then
      bad("api.key", "must be at least 16 characters long (a short key can be guessed); got " .. #cfg.api.key)
    end
    if cfg.api.key and #cfg.api.key > 512 then bad("api.key", "must be at most 512 characters long") end
    if cfg.api.rate.burst < 1 then bad("api.rate.burst", "must be at least 1") end
    if cfg.path:sub(1, 1) ~= "/" then bad("path", "must start with /, got \"" .. cfg.path .. "\"") end
    local url = cfg.database.url
    if url and not (url:find("^sqlite:.") or url:find("^postgres://") or url:find("^postgresql://")) then
      bad("database.url", "must be sqlite:PATH, sqlite::memory: or postgres://user:password@host:port/db, got \"" ..
        (url:gsub("//([^:/@]*):[^@]*@", "//%1:***@")) .. "\"")
    end
    if cfg.auth.required and not cfg.auth.secret and not cfg.auth.publicKeyFile then
      bad("auth.required", "is true but nothing can verify a token, so every connection would be refused: " ..
        "set auth.secret (at least 32 bytes; or start with --jwt-secret / MOONWIRE_JWT_SECRET) " ..
        "or auth.publicKeyFile (RS256/ES256)")
    end
    if #errors > 0 then
      table.sort(errors, function(a, b) return a.key < b.key or (a.key == b.key and a.text < b.text) end)
      local lines = {}
      for i, e in ipairs(errors) do lines[i] = e.text end
      error({ config_error = table.concat(lines, "\n") }, 0)
    end
    if not cfg.database.url then
      cfg.database.url = "sqlite:" .. app_dir .. "/data/app.db"
    else
      local rel = cfg.database.url:match("^sqlite:(.*)$")
      if rel and rel ~= ":memory:" and rel:sub(1, 1) ~= "/" then
        cfg.database.url = "sqlite:" .. app_dir .. "/" .. rel
      end
    end
    if cfg.auth.publicKeyFile and cfg.auth.publicKeyFile:sub(1, 1) ~= "/" then
      cfg.auth.publicKeyFile = app_dir .. "/" .. cfg.auth.publicKeyFile
    end
    return cfg
  end)
  if not ok then
    if type(result) == "table" and result.config_error then error(result.config_error, 0) end
    error("config error: " .. tostring(result), 0)
  end
  return result
end

M.schema = schema
return M
