-- lib/runlog.lua (queue tests): appends "<event> <jobId> <attempt> <ms> <worker> <extra>" lines to
-- the file $QUEUE_RUNS_LOG, the tests' witness of every run (it survives the server being killed).
local M = {}

function M.write(event, job, extra)
  local f = assert(io.open(assert(os.getenv("QUEUE_RUNS_LOG"), "QUEUE_RUNS_LOG is not set"), "a"))
  local mw = require("moonwire")
  f:write(string.format("%s %s %d %d %d %s\n", event, job and job.id or "-", job and job.attempt or 0,
    mw.clock:now(), mw.worker.index, extra or "-"))
  f:close()
end

return M
