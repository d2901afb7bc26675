-- rooms.options (lua/moonwire/room_options.lua): validation naming each wrong key, and the
-- first-match lookup with exact names and `*` globs.
local t = require "harness"
local test, eq = t.test, t.eq
local ro = require "moonwire.room_options"

local function check(list)
  local errs = {}
  local clean = ro.validate(list, "rooms.options", function(key, msg) errs[#errs + 1] = key .. " " .. msg end)
  return clean, errs
end

test("valid entries are kept with their defaults", function()
  local f = function() return true end
  local clean, errs = check({
    { pattern = "chat:*", history = { size = 100, ttl = 600 }, presence = true, joinLeave = true, canJoin = f },
    { pattern = "user:*", canJoin = false },
    { pattern = "prices:*", history = { size = 1 } },
  })
  eq(errs, {})
  eq(#clean, 3)
  eq(clean[1].history, { size = 100, ttl = 600 })
  eq(clean[1].presence, true)
  eq(clean[1].canJoin, f)
  eq(clean[2].canJoin, false)
  eq(clean[2].history, nil)
  eq(clean[3].history, { size = 1, ttl = 600 }) -- ttl's default
end)

test("every mistake is reported with its key", function()
  local _, errs = check({
    { pattern = "a", histroy = { size = 1 } },
    { pattern = "b", history = { size = 0 } },
    { pattern = "c", history = { size = 10001 } },
    { pattern = "d", history = { size = 1.5 } },
    { pattern = "e", history = { ttl = 0 } },
    { pattern = "f", history = { size = 1, keep = 2 } },
    { pattern = "", presence = "yes" },
    { canJoin = true },
    "not a table",
  })
  local keys = {}
  for _, e in ipairs(errs) do keys[#keys + 1] = e:match("^(%S+)") end
  eq(keys, { "rooms.options[1].histroy", "rooms.options[2].history.size", "rooms.options[3].history.size",
             "rooms.options[4].history.size", "rooms.options[5].history.ttl", "rooms.options[6].history.keep",
             "rooms.options[7].pattern", "rooms.options[7].presence", "rooms.options[8].pattern",
             "rooms.options[8].canJoin", "rooms.options[9]" })
  local _, not_list = check({ x = 1 })
  eq(#not_list, 1)
  t.truthy(not_list[1]:find("must be a list", 1, true))
end)

test("the first matching entry wins; * matches any run of characters, nothing else is special", function()
  local clean = check({
    { pattern = "chat:vip", presence = true },
    { pattern = "chat:*", history = { size = 5 } },
    { pattern = "a.b%c*", joinLeave = true },
    { pattern = "*" },
  })
  ro.setup(clean)
  eq(ro.match("chat:vip").pattern, "chat:vip")
  eq(ro.match("chat:").pattern, "chat:*")
  eq(ro.match("chat:42").history.size, 5)
  eq(ro.match("a.b%c").pattern, "a.b%c*")
  eq(ro.match("aXb%cdef").pattern, "*") -- '.' is literal
  eq(ro.match("anything").pattern, "*")
  ro.setup({ clean[2] })
  eq(ro.match("lobby"), nil)
  eq(ro.match("chat:x").pattern, "chat:*")
end)
