-- The wire frames the Lua side writes: exact bytes, fixed key order.
local t = require "harness"
local frames = require "moonwire.frames"
local test, eq = t.test, t.eq

test("a requestId is echoed exactly", function()
  eq(frames.encode_id(7), "7")
  eq(frames.encode_id(-3), "-3")
  eq(frames.encode_id(9007199254740991), "9007199254740991", "2^53-1 in full, not 14 digits")
  eq(frames.encode_id(2 ^ 60), "1.152921504606847e+18", "beyond 2^53: 17 significant digits")
  eq(frames.encode_id(0.1), "0.10000000000000001")
  eq(frames.encode_id("abc\"d"), '"abc\\"d"')
  eq(frames.encode_id(0 / 0), nil, "NaN is no id")
  eq(frames.encode_id(math.huge), nil)
  eq(frames.encode_id(-math.huge), nil)
end)

test("an error frame keeps its key order and leaves out what is nil", function()
  eq(frames.error("Failed to parse JSON"),
     '{"type":"error","action":"message","data":{"error":"Failed to parse JSON"}}')
  eq(frames.error("Unknown route", "not_found", "chat", "send", "5"),
     '{"type":"error","action":"message","data":{"error":"Unknown route","code":"not_found",' ..
     '"type":"chat","action":"send","requestId":5}}')
  eq(frames.error("x", nil, nil, "a", nil, "tb"),
     '{"type":"error","action":"message","data":{"error":"x","action":"a","traceback":"tb"}}')
end)

test("an error code is a string or a finite number, else its tostring", function()
  eq(frames.error("e", 42), '{"type":"error","action":"message","data":{"error":"e","code":42}}')
  eq(frames.error("e", true), '{"type":"error","action":"message","data":{"error":"e","code":"true"}}')
  eq(frames.error("e", math.huge), '{"type":"error","action":"message","data":{"error":"e","code":"inf"}}')
end)

test("a reply carries the response and the requestId only when there are some", function()
  local prefix = frames.reply_prefix("chat", "send")
  eq(prefix, '{"type":"chat","action":"send"')
  eq(frames.reply(prefix, nil, nil), '{"type":"chat","action":"send"}')
  eq(frames.reply(prefix, nil, "r1"), '{"type":"chat","action":"send","requestId":"r1"}')
  eq(frames.reply(prefix, { ok = true }, nil), '{"type":"chat","action":"send","response":{"ok":true}}')
  eq(frames.reply(prefix, "hi", 9), '{"type":"chat","action":"send","response":"hi","requestId":9}')
  eq(frames.reply(prefix, nil, 0.1), '{"type":"chat","action":"send","requestId":0.10000000000000001}')
  eq(frames.reply(prefix, nil, 0 / 0), '{"type":"chat","action":"send"}', "NaN is no id")
  eq(frames.reply(prefix, nil, true), '{"type":"chat","action":"send"}', "a boolean is no id")
  t.raises(function() frames.reply(prefix, { f = print }, nil) end, "Cannot serialise")
end)

test("the authenticated greeting", function()
  eq(frames.authenticated("ada"),
     '{"type":"auth","action":"authenticated","data":{"userId":"ada","message":"Authentication successful"}}')
  eq(frames.authenticated(9007199254740993),
     '{"type":"auth","action":"authenticated","data":{"userId":9007199254740992,"message":"Authentication successful"}}')
  eq(frames.authenticated(nil),
     '{"type":"auth","action":"authenticated","data":{"userId":null,"message":"Authentication successful"}}')
end)

test("a job's outcome frame", function()
  eq(frames.job("completed", "j1", "mail", "result", '{"n":1}'),
     '{"type":"queue","action":"completed","data":{"jobId":"j1","queue":"mail","result":{"n":1}}}')
  eq(frames.job("failed", "j2", "mail", "error", '"boom"'),
     '{"type":"queue","action":"failed","data":{"jobId":"j2","queue":"mail","error":"boom"}}')
end)
