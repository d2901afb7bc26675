-- moonwire.queue_sql: the queue's store without Redis: one table in the app's database (the
-- embedded SQLite file by default; PostgreSQL works too, the SQL is portable). A job is a row;
-- claiming it marks it 'active' with this worker as owner and a lease (its timeout + 30 s),
-- completing deletes it, a retry puts it back to 'waiting' with a later run_at, a failure keeps
-- it as 'failed' (with its error) for inspection. A worker that dies leaves 'active' rows
-- behind: the next worker takes back those of other owners when it starts (without Redis there
-- is one worker per database), and every worker takes back rows whose lease ran out (an outcome
-- that could not be recorded) every few seconds.
local core = require "moonwire.core"
local json = require "moonwire.json"

local M = {}

M.kind = "sql"

local MAX_LOST = 5
local OWNER
local db
local ready = false

local DDL = {
  [[CREATE TABLE IF NOT EXISTS moonwire_jobs (
      id TEXT PRIMARY KEY,
      queue TEXT NOT NULL,
      job TEXT NOT NULL,
      state TEXT NOT NULL,
      run_at BIGINT NOT NULL,
      owner TEXT,
      lease_until BIGINT,
      error TEXT,
      created_at BIGINT NOT NULL)]],
  "CREATE INDEX IF NOT EXISTS moonwire_jobs_due ON moonwire_jobs (queue, state, run_at)",
}

function M.init(_, tag, database)
  OWNER, db = tag, database
  return M
end

-- Creates the table once per worker; nil, err when the database refuses.
local function prepare()
  if ready then return true end
  for _, sql in ipairs(DDL) do
    local ok, err = db:exec(sql)
    if not ok then
      ok, err = db:exec(sql) -- another process may have created it at the same moment
      if not ok then return nil, "cannot create the jobs table: " .. tostring(err) end
    end
  end
  ready = true
  return true
end

function M.add(name, id, encoded, delay)
  local ok, err = prepare()
  if not ok then return nil, err end
  local now = core.now_ms()
  ok, err = db:exec("INSERT INTO moonwire_jobs (id, queue, job, state, run_at, created_at) VALUES (?, ?, ?, 'waiting', ?, ?)",
    id, name, encoded, now + math.floor(delay * 1000), now)
  if not ok then return nil, err end
  return true
end

-- Puts back the jobs of workers that stopped while running them: at start (at_start) those of
-- any other owner (without Redis there is one worker per database), later those whose lease
-- ran out. Returns true and the records failed for good (lost too often), or nil, err.
function M.recover(names, at_start)
  local ok, err = prepare()
  if not ok then return nil, err end
  local now = core.now_ms()
  local lost = {}
  for _, name in ipairs(names) do
    local rows, qerr
    if at_start then
      rows, qerr = db:query(
        "SELECT id, job FROM moonwire_jobs WHERE queue = ? AND state = 'active' AND (owner <> ? OR lease_until < ?)",
        name, OWNER, now)
    else
      rows, qerr = db:query("SELECT id, job FROM moonwire_jobs WHERE queue = ? AND state = 'active' AND lease_until < ?",
        name, now)
    end
    if not rows then return nil, qerr end
    for _, row in ipairs(rows) do
      local okd, rec = pcall(json.decode, row.job)
      if not (okd and type(rec) == "table") then rec = { id = row.id, queue = name } end
      rec.lost = (tonumber(rec.lost) or 0) + 1
      local done, uerr
      if rec.lost >= MAX_LOST or not okd then
        rec.error = okd and ("the worker running this job stopped " .. rec.lost .. " times") or "unreadable job record"
        done, uerr = db:exec("UPDATE moonwire_jobs SET state = 'failed', job = ?, error = ?, owner = NULL WHERE id = ? AND state = 'active'",
          json.encode(rec), rec.error, row.id)
        if done and done.changes > 0 then lost[#lost + 1] = rec end
      else
        done, uerr = db:exec("UPDATE moonwire_jobs SET state = 'waiting', job = ?, owner = NULL, run_at = ? WHERE id = ? AND state = 'active'",
          json.encode(rec), now, row.id)
      end
      if not done then return nil, uerr end
    end
  end
  return true, lost
end

-- Returns records (each with _ref = its row id), depth, {}; or nil, err.
function M.claim(name, count, lease_ms)
  local ok, err = prepare()
  if not ok then return nil, err end
  local now = core.now_ms()
  local records = {}
  if count > 0 then
    local rows, qerr = db:query([[
      UPDATE moonwire_jobs SET state = 'active', owner = ?, lease_until = ?
       WHERE id IN (SELECT id FROM moonwire_jobs WHERE queue = ? AND state = 'waiting' AND run_at <= ?
                     ORDER BY run_at, created_at LIMIT ?)
         AND state = 'waiting'
      RETURNING id, job]], OWNER, now + lease_ms, name, now, count)
    if not rows then return nil, qerr end
    for _, row in ipairs(rows) do
      local okd, rec = pcall(json.decode, row.job)
      if okd and type(rec) == "table" then
        rec._ref = row.id
        records[#records + 1] = rec
      else
        core.log("error", "queue: a job record cannot be read; it is failed", { queue = name, jobId = row.id })
        core.job_count("failed")
        db:exec("UPDATE moonwire_jobs SET state = 'failed', error = 'unreadable job record' WHERE id = ?", row.id)
      end
    end
  end
  local depth = db:query("SELECT COUNT(*) AS n FROM moonwire_jobs WHERE queue = ? AND state IN ('waiting', 'active')", name)
  return records, depth and depth[1] and tonumber(depth[1].n) or 0, {}
end

function M.complete(rec)
  return db:exec("DELETE FROM moonwire_jobs WHERE id = ?", rec._ref)
end

function M.retry(rec, encoded, delay)
  return db:exec("UPDATE moonwire_jobs SET state = 'waiting', job = ?, owner = NULL, run_at = ? WHERE id = ?",
    encoded, core.now_ms() + math.floor(delay * 1000), rec._ref)
end

function M.fail(rec, encoded, message)
  return db:exec("UPDATE moonwire_jobs SET state = 'failed', job = ?, error = ?, owner = NULL WHERE id = ?",
    encoded, message, rec._ref)
end

return M
