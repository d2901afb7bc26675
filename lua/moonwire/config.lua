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
           issuer = "string", audience = "string", publicKeyFile = "string" },
  redis = { url = "string", prefix = "string", timeout = "posnum" },
  database = { url = "string" },
  rooms = { clientCanJoinMultipleRooms = "boolean", maxPerClient = "posint" },
  inactivity = { checkInterval = "posnum", maxInactive = "posnum" },
  heartbeat = { interval = "posnum", timeout = "posnum" },
  cluster = { heartbeat = "posnum" },
  limits = { maxMessageSize = "posint", maxFragments = "posint", maxHeaderBytes = "posint",
             handshakeTimeout = "posnum", maxConnections = "posint", sendQueueBytes = "posint",
             rate = { messages = "posnum", per = "posnum", burst = "posnum" },
             jsonDepth = "posint", handlerTimeout = "posnum", luaMemory = "posint",
             shutdownTimeout = "posnum" },
  allowedOrigins = "list", trustedProxies = "list",
  events = { onServerStarted = "function", onConnect = "function", onDisconnect = "function",
             onJoinRoom = "function", onLeaveRoom = "function", onAuthenticate = "function" },
  subscribers = "list",
  raw = "function",
  dev = "boolean",
  log = { level = "loglevel", format = "logformat" },
}

local function defaults()
  return {
    host = "0.0.0.0", port = 8080, path = "/ws", workers = 1,
    routes = {},
    auth = { algorithm = "HS256", required = false, leeway = 30 },
    redis = { prefix = "moonwire:", timeout = 5 },
    database = {},
    rooms = { clientCanJoinMultipleRooms = true, maxPerClient = 128 },
    inactivity = { checkInterval = 60, maxInactive = 300 },
    heartbeat = { interval = 25, timeout = 10 },
    cluster = { heartbeat = 5 },
    limits = { maxMessageSize = 65536, maxFragments = 1024, maxHeaderBytes = 8192,
               handshakeTimeout = 10, sendQueueBytes = 1048576,
               rate = { messages = 100, per = 1, burst = 200 },
               jsonDepth = 32, handlerTimeout = 5, luaMemory = 268435456, shutdownTimeout = 8 },
    events = {},
    subscribers = {},
    dev = false,
    log = { level = "info", format = "text" },
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
}

local function fail(key, msg)
  error({ config_error = "config error: " .. key .. " " .. msg }, 0)
end

local function validate(value, spec, prefix)
  for k, v in pairs(value) do
    local key = prefix .. tostring(k)
    local want = type(k) == "string" and spec[k] or nil
    if want == nil then
      fail(key, "is not a known setting (valid keys" ..
        (prefix ~= "" and " in " .. prefix:sub(1, -2) or "") .. ": " .. sorted_keys(spec) .. ")")
    elseif type(want) == "table" then
      if type(v) ~= "table" then fail(key, "must be a table, got " .. type(v)) end
      validate(v, want, key .. ".")
    else
      local ok, what = checks[want](v)
      if not ok then
        fail(key, "must be " .. what .. ", got " .. (type(v) == "string" and ("\"" .. v .. "\"") or type(v)))
      end
    end
  end
end

local function merge(into, from)
  for k, v in pairs(from) do
    if type(v) == "table" and type(into[k]) == "table" and not is_list(v) then
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
}

local function convert(name, spec_type, raw, origin)
  if spec_type == "port" or spec_type == "posint" then
    local n = tonumber(raw)
    if not n then error({ config_error = "config error: " .. origin .. " must be a number, got \"" .. raw .. "\"" }, 0) end
    return n
  elseif spec_type == "workers" then
    if raw == "auto" then return "auto" end
    local n = tonumber(raw)
    if not n then error({ config_error = "config error: " .. origin .. " must be a number or auto, got \"" .. raw .. "\"" }, 0) end
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
    validate(user, schema, "")
    merge(cfg, user)
    for name, o in pairs(overrides or {}) do
      local path = override_paths[name]
      if path then
        local target = cfg
        for i = 1, #path - 1 do target = target[path[i]] end
        local v = convert(name, spec_of(path), o.value, o.origin)
        local good, what = checks[spec_of(path)](v)
        if not good then
          error({ config_error = "config error: " .. o.origin .. " must be " .. what .. ", got \"" .. o.value .. "\"" }, 0)
        end
        target[path[#path]] = v
      end
    end
    -- --dev means debug logs unless a level was chosen explicitly
    if cfg.dev and not (overrides and overrides.log_level) and not (user.log and user.log.level) then
      cfg.log.level = "debug"
    end
    -- cross-field checks
    if cfg.auth.secret and #cfg.auth.secret < 32 and cfg.auth.algorithm:sub(1, 2) == "HS" then
      fail("auth.secret", "must be at least 32 bytes long for " .. cfg.auth.algorithm ..
        " (a short HMAC secret can be brute-forced); got " .. #cfg.auth.secret)
    end
    if cfg.redis.url and not cfg.redis.url:match("^redis://") then
      fail("redis.url", "must look like redis://host:port/db, got \"" .. cfg.redis.url .. "\"")
    end
    if #cfg.subscribers > 0 and not cfg.redis.url then
      fail("subscribers", "need Redis: start with --redis redis://host:port or set redis.url")
    end
    if cfg.limits.rate.burst < 1 then
      fail("limits.rate.burst", "must be at least 1 (a bucket that never holds a whole token refuses everything)")
    end
    if cfg.auth.secret and #cfg.auth.secret > 4095 then
      fail("auth.secret", "must be at most 4095 bytes long")
    end
    if cfg.path:sub(1, 1) ~= "/" then fail("path", "must start with /, got \"" .. cfg.path .. "\"") end
    local url = cfg.database.url
    if url and not (url:find("^sqlite:.") or url:find("^postgres://") or url:find("^postgresql://")) then
      fail("database.url", "must be sqlite:PATH, sqlite::memory: or postgres://user:password@host:port/db, got \"" ..
        (url:gsub("//([^:/@]*):[^@]*@", "//%1:***@")) .. "\"")
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
