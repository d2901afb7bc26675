-- moonwire.can_join: the `canJoin` room option (DESIGN 14), asked before every client-side join
-- (system/joinRoom, recovery joins with `since` included; never server code). `false` refuses
-- every client; a function (clientId, roomName, client) runs in its own coroutine, so it may
-- wait on redis/database, and answers true (allowed), false ("Not allowed") or a string (that
-- reason). Anything else refuses with "Not allowed":
--   raising                     refused, the error is logged
--   nil, a number, a table, ... refused, a warning names what it returned (a missing
--                               `return` must not open a private room)
--   no answer within limits.handlerTimeout seconds (wall time: a check waiting on a slow
--                               database) refused, logged; its late answer is ignored
-- The joining client's handler waits meanwhile; other clients are served as usual.
local core = require "moonwire.core"
local scheduler = require "moonwire.scheduler"

local running = coroutine.running

local M = {}

local NOT_ALLOWED = "Not allowed"
M.NOT_ALLOWED = NOT_ALLOWED

-- What a check's return value means: nil when allowed, else the refusal's text.
local function verdict(room, v)
  if v == true then return nil end
  if v == false then return NOT_ALLOWED end
  if type(v) == "string" then return v ~= "" and v or NOT_ALLOWED end
  core.log("warn", "canJoin returned neither true, false nor a string: the join is refused",
    { room = room, returned = type(v) == "table" and "a table" or tostring(v) })
  return NOT_ALLOWED
end

-- Asks check (the room option: false or a function) whether clientId may join room; client is
-- getClient's table. Must run in a coroutine that may yield. timeout: seconds. Returns nil when
-- allowed, else the refusal's text.
local count_event = core.count_event or function() end

local function ask(check, clientId, room, client, timeout)
  if check == false then return NOT_ALLOWED end
  scheduler.check("canJoin")
  local waiter = running()
  local token = scheduler.next_token()
  local state = { done = false, waiting = false, answer = nil }
  local timer

  local function settle(answer)
    if state.done then return end
    state.done, state.answer = true, answer
    if timer then core.timer_stop(timer); timer = nil end
    if state.waiting then scheduler.resume(waiter, token, answer) end
  end

  -- the watchdog names the app's function, not this wrapper
  scheduler.spawn_at("canJoin " .. room, check, function()
    local ok, v = pcall(check, clientId, room, client)
    if not ok then
      core.log("error", "canJoin raised an error: the join is refused", { room = room, error = tostring(v) })
      settle(NOT_ALLOWED)
    elseif not state.done then
      settle(verdict(room, v))
    end
  end)
  if state.done then return state.answer end -- answered without waiting

  timer = core.timer_start(timeout, false, function()
    timer = nil
    if not state.done then
      core.log("warn", "canJoin did not answer in time: the join is refused", { room = room, seconds = timeout })
      settle(NOT_ALLOWED)
    end
  end)
  state.waiting = true
  return scheduler.wait(token)
end

function M.ask(check, clientId, room, client, timeout)
  if check == nil then return nil end
  local refused = ask(check, clientId, room, client, timeout)
  if refused then count_event("refused") end
  return refused
end

return M
