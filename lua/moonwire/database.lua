-- moonwire.database: the `database` binding. query/exec run on the worker's database and wait
-- for the result without blocking the worker: SQLite on libuv's thread pool, PostgreSQL on a
-- small pool of non-blocking connections. `?` placeholders are bound, never spliced.
-- transaction(fn) runs fn(tx) between BEGIN and COMMIT (ROLLBACK, then the error is raised
-- again, when fn raises). SQLite has one connection, so other coroutines' statements wait until
-- the transaction ends; PostgreSQL pins one pooled connection to the transaction and other
-- coroutines go on using the others. Inside fn, the coroutine's own database:query/exec calls
-- run in the transaction too, on both backends.
local core = require "moonwire.core"
local scheduler = require "moonwire.scheduler"

local running = coroutine.running

local Database = {}
Database.__index = Database

local Tx = {}
Tx.__index = Tx

-- coroutine -> the tx of the transaction it is running
local open_tx = setmetatable({}, { __mode = "k" })

-- SQLite: the coroutine inside a transaction, and the {co, token} of those waiting for it
local owner = nil
local queue = {}

local function wait_turn()
  local co = running()
  while owner ~= nil and owner ~= co do
    local token = scheduler.next_token()
    queue[#queue + 1] = { co = co, token = token }
    scheduler.wait(token)
  end
end

local function release()
  owner = nil
  local waiters = queue
  queue = {}
  for _, w in ipairs(waiters) do scheduler.resume(w.co, w.token) end -- each checks again whose turn it is
end

-- Runs one statement, inside tx when given (else inside the caller's own open transaction, if
-- any); returns rows, changes, lastInsertId or nil, err.
local array = require("moonwire.json").array -- rows go out as a JSON array, also when none

local function run(what, tx, sql, ...)
  if type(sql) ~= "string" then error(what .. ": sql must be a string, got " .. type(sql), 3) end
  scheduler.check(what)
  tx = tx or open_tx[running()]
  local token = scheduler.next_token()
  local sent, err
  if tx and tx.session then
    sent, err = core.db_run_in(token, tx.session, sql, ...)
  else
    wait_turn() -- SQLite; owner is never set on PostgreSQL
    sent, err = core.db_run(token, sql, ...)
  end
  if not sent then return nil, err end
  return scheduler.wait(token)
end

local function as_exec(rows, changes, last)
  if rows == nil then return nil, changes end
  return { changes = changes, lastInsertId = last }
end

function Database.new()
  return setmetatable({}, Database)
end

--- "sqlite" or "postgres" (nil, err when the database URL is not usable), for SQL that differs.
function Database:backend()
  return core.db_backend()
end

--- Rows of a query: an array of tables keyed by column name (NULL columns are absent), or nil, err.
function Database:query(sql, ...)
  local rows, err = run("database:query", nil, sql, ...)
  if rows == nil then return nil, err end
  return array(rows)
end

--- Runs a statement: {changes = n, lastInsertId = id}, or nil, err. On PostgreSQL lastInsertId
--- is the first column of the first row returned (INSERT ... RETURNING id), else nil.
function Database:exec(sql, ...)
  return as_exec(run("database:exec", nil, sql, ...))
end

local function check_open(tx, what)
  if not tx._open then error(what .. ": its transaction has ended", 3) end
end

--- Like database:query, inside the transaction.
function Tx:query(sql, ...)
  check_open(self, "tx:query")
  local rows, err = run("tx:query", self, sql, ...)
  if rows == nil then return nil, err end
  return array(rows)
end

--- Like database:exec, inside the transaction.
function Tx:exec(sql, ...)
  check_open(self, "tx:exec")
  return as_exec(run("tx:exec", self, sql, ...))
end

--- Runs fn(tx) inside BEGIN ... COMMIT; rolls back and raises again when fn raises.
--- Returns what fn returned, or nil, err when BEGIN or COMMIT failed.
function Database:transaction(fn)
  if type(fn) ~= "function" then error("database:transaction: fn must be a function", 2) end
  scheduler.check("database:transaction")
  local co = running()
  if open_tx[co] then error("database:transaction: transactions do not nest", 2) end
  local backend, berr = core.db_backend()
  if not backend then return nil, berr end
  local pg = backend == "postgres"
  local tx = setmetatable({ _open = true }, Tx)
  if pg then
    local session, err = core.db_session_open()
    if not session then return nil, err end
    tx.session = session -- statements go to the connection its BEGIN pins
  else
    wait_turn()
    owner = co
  end
  open_tx[co] = tx
  local function finish()
    open_tx[co] = nil
    tx._open = false
    if pg then core.db_session_close(tx.session) else release() end
  end
  -- BEGIN/COMMIT/ROLLBACK never raise here, so finish() always runs
  local function control(sql)
    local ok, rows, err = pcall(run, "database:transaction", tx, sql)
    if not ok then return nil, rows end
    return rows, err
  end
  local ok, err = control(pg and "BEGIN" or "BEGIN IMMEDIATE")
  if not ok then finish(); return nil, err end
  local results = { pcall(fn, tx) }
  if results[1] then
    local done, cerr = control("COMMIT")
    if not done then control("ROLLBACK"); finish(); return nil, cerr end
    finish()
    return unpack(results, 2, table.maxn(results))
  end
  control("ROLLBACK")
  finish()
  error(results[2], 0)
end

return Database
