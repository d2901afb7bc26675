-- moonwire.history's checks (lua/moonwire/history.lua): what a message to a history room may be
-- (a JSON object, its own room/offset replaced), what a since may be, and the subscriber key
-- (moonwire.scheduler.local_key) that makes every worker's copy of one send the same.
local t = require "harness"
local test, eq, truthy = t.test, t.eq, t.truthy
local json = require "moonwire.json"
local history = require "moonwire.history"
local scheduler = require "moonwire.scheduler"

local function raises(fn, pattern)
  local ok, err = pcall(fn)
  truthy(not ok, "expected an error")
  truthy(tostring(err):find(pattern, 1, true), tostring(err))
end

test("a message is a JSON object: a table or its text", function()
  eq(history.body({ a = 1 }, "f"), '{"a":1}')
  eq(history.body({}, "f"), "{}")
  eq(history.body(' {"a":1} ', "f"), ' {"a":1} ')
  for _, bad in ipairs({ { 1, 2 }, json.emptyArray, json.array({}), "[1]", "not json", '{"a":1} x', '"s"', "", 5, true }) do
    raises(function() history.body(bad, "sendMessageToRoom") end, "sendMessageToRoom: a message to a history room must be")
  end
end)

test("the message's own room and offset give way to the server's", function()
  local msg = { room = "mine", offset = 3, k = 1 }
  eq(json.decode(history.body(msg, "f")), { k = 1 })
  eq(msg.room, "mine") -- the caller's table is left alone
  eq(json.decode(history.body('{"room":"x","offset":1,"k":2}', "f")), { k = 2 })
end)

test("since: absent, or {offset = integer >= 0, epoch = string}", function()
  eq(history.parse_since(nil), nil)
  eq(history.parse_since(json.null), nil)
  eq({ history.parse_since({ offset = 0, epoch = "e" }) }, { 0, "e" })
  eq({ history.parse_since({ offset = 1e300, epoch = "e" }) }, { 9007199254740992, "e" })
  for _, bad in ipairs({ 5, "x", true, json.array({ 1 }), { offset = -1, epoch = "e" }, { offset = 1.5, epoch = "e" },
                         { offset = "1", epoch = "e" }, { offset = 1, epoch = 7 }, { offset = 1 }, { epoch = "e" },
                         { offset = 0 / 0, epoch = "e" } }) do
    eq(history.parse_since(bad), false)
  end
end)

test("a subscriber's sends are numbered the same on every worker", function()
  local keys = {}
  scheduler.spawn_local("subscriber feed", function()
    keys[1] = scheduler.local_key()
    keys[2] = scheduler.local_key()
  end, "feed", "payload")
  eq(keys, { "feed\npayload\n1", "feed\npayload\n2" })
  local outside
  scheduler.spawn("timer", function() outside = scheduler.local_key() end)
  eq(outside, nil)
end)
