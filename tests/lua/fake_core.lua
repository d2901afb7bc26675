-- tests/lua/fake_core.lua: a stand-in for the `moonwire.core` table C injects (runtime/vm/
-- mw_lvm.c, mw_lapi_*.c), recording what the Lua side asked of it: frames sent, log lines,
-- handler sites pushed and popped, handlers reported finished, timers and Redis calls started.
-- A test fires a timer or answers a Redis call itself, as the event loop would.
local core = {}

function core.reset()
  core.sent = {}       -- {clientId, frame, binary, local_only}
  core.logs = {}       -- {level, message, fields}
  core.site_stack = {} -- the sites pushed and not yet popped
  core.site_log = {}   -- every push: {label, source, line}
  core.finished = {}   -- {clientId, failed}
  core.timers = {}     -- id -> {seconds, repeating, fn}
  core.sleeps = {}     -- timer:sleep calls: {token, seconds}
  core.redis_calls = {} -- {token, cmd, args..., co = the waiting coroutine}
  core.now = 1700000000000
  core.redis_on = false
  core.next_timer = 0
end
core.reset()

function core.log(level, message, fields)
  core.logs[#core.logs + 1] = { level = level, message = message, fields = fields }
end
function core.log_enabled() return true end

function core.send(clientId, frame, binary, local_only)
  core.sent[#core.sent + 1] = { clientId, frame, binary = binary, local_only = local_only }
  return true
end

-- core.reply: C encodes the reply frame and sends it; here its text (the same C encoder, as
-- frames.reply) is recorded as sent.
function core.reply(clientId, prefix, response, rid)
  local ok, frame = pcall(require("moonwire.wire").reply, prefix, response, rid)
  if not ok then return nil, frame end
  return core.send(clientId, frame)
end

function core.site_push(label, source, line)
  local s = { label = label, source = source, line = line }
  core.site_stack[#core.site_stack + 1] = s
  core.site_log[#core.site_log + 1] = s
end
function core.site_pop()
  assert(#core.site_stack > 0, "site_pop without a site pushed")
  core.site_stack[#core.site_stack] = nil
end

function core.handler_finished(clientId, failed)
  core.finished[#core.finished + 1] = { clientId, failed }
end

function core.now_ms() return core.now end

function core.history_setup(capBytes) core.history_cap = capBytes end

function core.timer_start(seconds, repeating, fn)
  core.next_timer = core.next_timer + 1
  core.timers[core.next_timer] = { seconds = seconds, repeating = repeating, fn = fn }
  return core.next_timer
end
function core.timer_stop(id) core.timers[id] = nil end

-- timer:sleep: C starts one timer and, when it fires, resumes the sleeper with its token.
function core.timer_sleep(token, seconds)
  core.sleeps[#core.sleeps + 1] = { token = token, seconds = seconds }
  return true
end

-- Fires timer id as the event loop would: C spawns its function through hooks.spawn.
function core.fire_timer(id)
  local t = assert(core.timers[id], "no such timer")
  if not t.repeating then core.timers[id] = nil end
  require("moonwire.hooks").hooks.spawn("timer", t.fn)
end

function core.redis_configured() return core.redis_on end
function core.redis_connected() return core.redis_on end
function core.redis_call(token, cmd, ...)
  core.redis_calls[#core.redis_calls + 1] = { token, cmd, co = coroutine.running(), ... }
  return true
end

function core.room_members() return {} end
function core.room_names() return {} end
function core.client_info() return nil end
function core.draining() return false end

-- *.lua files (or, folders true, subfolders) of path, sorted, as the C list_dir gives them.
function core.list_dir(path, folders)
  local out = {}
  local p = io.popen('ls -1 "' .. path .. '" 2>/dev/null')
  for name in p:lines() do
    local full = path .. "/" .. name
    local is_dir = os.execute('test -d "' .. full .. '"') == 0
    if name:sub(1, 1) ~= "." and ((folders and is_dir) or (not folders and not is_dir and name:match("%.lua$"))) then
      out[#out + 1] = name
    end
  end
  p:close()
  table.sort(out)
  return out
end

return core
