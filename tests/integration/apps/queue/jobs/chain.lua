-- jobs/chain.lua (queue tests): a job that uses the database and adds another job.
local record = require("runlog")

return function(job, mw)
  local db = mw.database
  assert(db:exec("CREATE TABLE IF NOT EXISTS chain_log (v TEXT)"))
  assert(db:exec("INSERT INTO chain_log (v) VALUES (?)", job.data.value))
  local rows = assert(db:query("SELECT COUNT(*) AS n FROM chain_log"))
  local next_id = assert(mw.queue:add("echo", { value = "from-chain", clientId = job.data.clientId }))
  record.write("done", job, tostring(job.data.value))
  return { rows = rows[1].n, next = next_id }
end
