-- moonwire.database: the `database` binding. query/exec run on the worker's database (SQLite
-- on libuv's thread pool) and wait for the result without blocking the worker; `?`
-- placeholders are bound, never spliced. transaction(fn) holds the database for fn: other
-- coroutines' statements wait until it commits (fn returned) or rolls back (fn raised; the
-- error is raised again).
local core = require "moonwire.core"
local await = require "moonwire.await"

local running = coroutine.running

local Database = {}
Database.__index = Database

local owner = nil -- the coroutine inside a transaction
local queue = {}  -- {co, token} of coroutines waiting for it to end

local function wait_turn()
  local co = running()
  while owner ~= nil and owner ~= co do
    local token = await.next_token()
    queue[#queue + 1] = { co = co, token = token }
    await.wait(token)
  end
end

local function release()
  owner = nil
  local waiters = queue
  queue = {}
  local resume = require("moonwire.runtime").resume
  for _, w in ipairs(waiters) do resume(w.co, w.token) end -- each checks again whose turn it is
end

-- Runs one statement; returns rows, changes, lastInsertId or nil, err.
local function run(what, sql, ...)
  if type(sql) ~= "string" then error(what .. ": sql must be a string, got " .. type(sql), 3) end
  await.check(what)
  wait_turn()
  local token = await.next_token()
  local sent, err = core.db_run(token, sql, ...)
  if not sent then return nil, err end
  return await.wait(token)
end

function Database.new()
  return setmetatable({}, Database)
end

--- Rows of a query: an array of tables keyed by column name (NULL columns are absent), or nil, err.
function Database:query(sql, ...)
  local rows, err = run("database:query", sql, ...)
  if rows == nil then return nil, err end
  return rows
end

--- Runs a statement: {changes = n, lastInsertId = id}, or nil, err.
function Database:exec(sql, ...)
  local rows, changes, last = run("database:exec", sql, ...)
  if rows == nil then return nil, changes end
  return { changes = changes, lastInsertId = last }
end

--- Runs fn(tx) inside BEGIN ... COMMIT; rolls back and raises again when fn raises.
--- Returns what fn returned, or nil, err when BEGIN or COMMIT failed.
function Database:transaction(fn)
  if type(fn) ~= "function" then error("database:transaction: fn must be a function", 2) end
  await.check("database:transaction")
  local co = running()
  if owner == co then error("database:transaction: transactions do not nest", 2) end
  wait_turn()
  owner = co
  local ok, err = self:exec("BEGIN IMMEDIATE")
  if not ok then release(); return nil, err end
  local results = { pcall(fn, self) }
  if results[1] then
    local done, cerr = self:exec("COMMIT")
    if not done then self:exec("ROLLBACK"); release(); return nil, cerr end
    release()
    return unpack(results, 2)
  end
  self:exec("ROLLBACK")
  release()
  error(results[2], 0)
end

return Database
