-- jobs/conc.lua (queue tests): at most 2 at a time in a worker; records how many ran at once.
local record = require("runlog")
local active = 0

return {
  concurrency = 2,
  process = function(job, mw)
    active = active + 1
    record.write("run", job, tostring(active))
    mw.timer:sleep(0.3)
    active = active - 1
    record.write("done", job)
  end,
}
