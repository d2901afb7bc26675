-- jobs/echo.lua (queue tests): data {value, fail, failUntil, sleep, coded}
local record = require("runlog")

return function(job, mw)
  local d = job.data or {}
  record.write("run", job, tostring(d.value))
  if d.sleep then mw.timer:sleep(d.sleep) end
  if d.coded then error({ code = "bad_job", message = "coded failure " .. job.attempt }) end
  if d.fail then error("boom " .. job.attempt) end
  if d.failUntil and job.attempt < d.failUntil then error("not yet " .. job.attempt) end
  record.write("done", job, tostring(d.value))
  return { value = d.value, attempt = job.attempt }
end
