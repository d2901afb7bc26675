-- moonwire.errors: what becomes of an error a handler raised. A coded error ({code=, message=})
-- is the app's answer and reaches the client as it is; anything else is internal: logged with
-- its traceback, and the client only learns "Internal error" (or that the handler timed out or
-- ran out of memory). Shared by the router (messages), the scheduler (events, timers, jobs)
-- and the hooks (onAuthenticate), so all three classify and log errors the same way.
local core = require "moonwire.core"
local frames = require "moonwire.frames"

local traceback = debug.traceback
local find = string.find

local M = {}

-- The limits' errors (see runtime/vm/mw_lguard.h): the time hook's message, and LuaJIT's for a
-- failed allocation (the Lua memory cap), which reaches xpcall without its handler.
local TIMEOUT_MARK, MEMORY_MESSAGE = "handler timed out", "not enough memory"
M.MEMORY_MESSAGE = MEMORY_MESSAGE

-- xpcall handler: keeps coded errors ({code=, message=}) as they are, wraps anything else with
-- its traceback.
function M.capture(e)
  if type(e) == "table" and e.code ~= nil and not e.__internal then return e end
  local text = type(e) == "string" and e or ("(error object: " .. tostring(e) .. ")")
  if type(e) == "table" and type(e.message) == "string" then text = e.message end
  return { __internal = true, message = text, traceback = traceback(text, 2) }
end

-- What a failed xpcall left: capture's table, or a bare string when capture itself could not
-- run (out of memory, an error inside the handler).
function M.failure(result)
  if type(result) == "table" then return result end
  return { __internal = true, message = tostring(result) }
end

-- The error frame for an internal failure: a timeout and the memory cap get their own code;
-- with_traceback (--dev) adds the traceback. rid is already encoded.
function M.internal_frame(err, t, a, rid, with_traceback)
  local m = err.message
  if type(m) == "string" and find(m, TIMEOUT_MARK, 1, true) then
    return frames.error("Handler timed out", "timeout", t, a, rid)
  end
  if m == MEMORY_MESSAGE or (type(m) == "string" and find(m, MEMORY_MESSAGE, 1, true)) then
    return frames.error("Out of memory", "out_of_memory", t, a, rid)
  end
  return frames.error("Internal error", "internal", t, a, rid, with_traceback and err.traceback or nil)
end

-- Logs an internal error of the handler `route` names ("chat:send", "events.onConnect").
function M.log(route, err)
  core.log("error", "handler error", { route = route, error = err.message, traceback = err.traceback })
end

return M
