-- moonwire.await: how a binding waits for I/O. The binding numbers its call, registers the
-- running coroutine as waiting for that number and yields; runtime.resume(co, number, ...)
-- resumes the coroutine only if it still waits for that very call.
local co_yield, isyieldable, running = coroutine.yield, coroutine.isyieldable, coroutine.running

local M = {}

M.waiting = setmetatable({}, { __mode = "k" })
local last = 0

function M.next_token()
  last = last + 1
  return last
end

-- Raises unless the caller may yield here (inside a handler, not inside a C function).
function M.check(what)
  if not isyieldable() then
    error(what .. " waits for I/O and cannot run here (outside a handler, or inside a C function " ..
          "such as string.gsub, table.sort or a metamethod)", 3)
  end
end

-- Yields until runtime.resume(co, token, ...) and returns those values.
function M.wait(token)
  M.waiting[running()] = token
  return co_yield()
end

return M
