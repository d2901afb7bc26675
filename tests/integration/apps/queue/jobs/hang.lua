-- jobs/hang.lua (queue tests): never returns (waits on a timer for an hour); bounded by timeout.
local record = require("runlog")

return {
  timeout = 0.5,
  process = function(job, mw)
    record.write("run", job)
    mw.timer:sleep(3600)
    record.write("done", job)
  end,
}
