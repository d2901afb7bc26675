-- moonwire.room_options: `rooms.options` of app.lua, the per-room settings (history, presence,
-- join/leave events, who may join). validate() checks the list for config.lua, naming the key
-- of every mistake (rooms.options[2].histroy); match() gives the first entry whose pattern
-- matches a room name. A pattern is an exact name or a glob where `*` matches any run of
-- characters (also none); nothing else is special.
local M = {}

local MAX_HISTORY = 10000
local DEFAULT_TTL = 600 -- seconds after the room's last message

local known = { pattern = true, history = true, presence = true, joinLeave = true, canJoin = true }
local known_history = { size = true, ttl = true }

local function keys_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return table.concat(out, ", ")
end

-- The Lua pattern for a glob: every character literal except `*`.
local function glob_to_pattern(glob)
  local parts = { "^" }
  for i = 1, #glob do
    local c = glob:sub(i, i)
    if c == "*" then parts[#parts + 1] = ".*"
    elseif c:match("%W") then parts[#parts + 1] = "%" .. c
    else parts[#parts + 1] = c end
  end
  parts[#parts + 1] = "$"
  return table.concat(parts)
end

local function describe(v)
  if type(v) == "string" then return "\"" .. v .. "\"" end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return type(v)
end

-- Checks the list; add_error(key, message) is called for each mistake. Returns the entries
-- that are valid, each with its compiled pattern (`match`) and its history defaults filled in.
function M.validate(list, prefix, add_error)
  local clean = {}
  if type(list) ~= "table" then
    add_error(prefix, "must be a list of {pattern = ..., ...} entries, got " .. type(list))
    return clean
  end
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 or k > #list then
      add_error(prefix, "must be a list (array table), got the key " .. describe(k))
      return clean
    end
  end
  for i, entry in ipairs(list) do
    local at = prefix .. "[" .. i .. "]"
    local ok = true
    local function bad(key, msg) add_error(at .. (key and "." .. key or ""), msg); ok = false end
    if type(entry) ~= "table" then
      bad(nil, "must be a table {pattern = ..., ...}, got " .. type(entry))
    else
      for k in pairs(entry) do
        if not known[k] then bad(tostring(k), "is not a known setting (valid keys: " .. keys_of(known) .. ")") end
      end
      if type(entry.pattern) ~= "string" or entry.pattern == "" then
        bad("pattern", "must be a non-empty string (a room name, `*` matches any characters), got " ..
          describe(entry.pattern))
      end
      local h = entry.history
      local history
      if h ~= nil then
        if type(h) ~= "table" then
          bad("history", "must be a table {size = N, ttl = SECONDS}, got " .. describe(h))
        else
          for k in pairs(h) do
            if not known_history[k] then
              bad("history." .. tostring(k), "is not a known setting (valid keys: size, ttl)")
            end
          end
          local size = h.size == nil and 100 or h.size
          local ttl = h.ttl == nil and DEFAULT_TTL or h.ttl
          if type(size) ~= "number" or size % 1 ~= 0 or size < 1 or size > MAX_HISTORY then
            bad("history.size", "must be an integer from 1 to " .. MAX_HISTORY .. ", got " .. describe(size))
          end
          if type(ttl) ~= "number" or ttl <= 0 or ttl ~= ttl or ttl == math.huge then
            bad("history.ttl", "must be a number of seconds > 0, got " .. describe(ttl))
          end
          history = { size = size, ttl = ttl }
        end
      end
      for _, flag in ipairs({ "presence", "joinLeave" }) do
        if entry[flag] ~= nil and type(entry[flag]) ~= "boolean" then
          bad(flag, "must be true or false, got " .. describe(entry[flag]))
        end
      end
      if entry.canJoin ~= nil and entry.canJoin ~= false and type(entry.canJoin) ~= "function" then
        bad("canJoin", "must be false or a function(clientId, roomName, client), got " .. describe(entry.canJoin))
      end
      if ok then
        clean[#clean + 1] = {
          pattern = entry.pattern, match = glob_to_pattern(entry.pattern), exact = not entry.pattern:find("*", 1, true),
          history = history, presence = entry.presence == true, joinLeave = entry.joinLeave == true,
          canJoin = entry.canJoin,
        }
      end
    end
  end
  return clean
end

-- ---- lookups ----------------------------------------------------------------------------

local entries = {}
local has_history = false
local cache, cached = {}, 0
local CACHE_MAX = 10000 -- room names remembered; the cache starts over past it
local NONE = {}

-- Uses the validated list (config.rooms.options).
function M.setup(list)
  entries = list or {}
  cache, cached = {}, 0
  has_history = false
  for _, e in ipairs(entries) do
    if e.history then has_history = true end
  end
end

-- Whether any entry has history (when none does, a room send needs no lookup).
function M.any_history() return has_history end

-- The options of room `name` (the first matching entry), or nil when no entry matches.
function M.match(name)
  local hit = cache[name]
  if hit == nil then
    hit = NONE
    for i = 1, #entries do
      local e = entries[i]
      if (e.exact and e.pattern == name) or (not e.exact and name:find(e.match)) then
        hit = e
        break
      end
    end
    if cached >= CACHE_MAX then cache, cached = {}, 0 end
    cache[name] = hit
    cached = cached + 1
  end
  if hit == NONE then return nil end
  return hit
end

M.glob_to_pattern = glob_to_pattern
return M
