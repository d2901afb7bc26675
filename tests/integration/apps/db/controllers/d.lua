-- d: database binding test controller, the same actions on SQLite and PostgreSQL (the few
-- statements whose SQL differs are picked by database:backend()): schema, inserts, queries,
-- types, errors, transactions, slow queries.
local D = {}

local SQL = {
  sqlite = {
    schema = "CREATE TABLE IF NOT EXISTS m(id INTEGER PRIMARY KEY, room TEXT, text TEXT, score REAL, b BLOB, " ..
             "n INTEGER, flag BOOLEAN)",
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) SELECT count(*) AS n FROM c",
    sleep = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ? * 2000000) SELECT count(*) AS n FROM c",
  },
  postgres = {
    schema = "CREATE TABLE IF NOT EXISTS m(id SERIAL PRIMARY KEY, room TEXT, text TEXT, score DOUBLE PRECISION, " ..
             "b BYTEA, n BIGINT, flag BOOLEAN)",
    slow = "SELECT 3000000 AS n FROM pg_sleep(1.5)",
    sleep = "SELECT 1 AS n FROM pg_sleep(?)",
  },
}

local function sql(self, name) return SQL[self.database:backend()][name] end

function D:backend(id) return self.database:backend() end
function D:setup(id) return self.database:exec(sql(self, "schema")) end
function D:add(id, d)
  return self.database:exec("INSERT INTO m(room, text, score, n) VALUES (?, ?, ?, ?) RETURNING id",
                            d.room, d.text, d.score, d.n)
end
function D:plain(id, d) return self.database:exec("INSERT INTO m(room, text) VALUES (?, ?)", d.room, d.text) end
function D:list(id, d) return self.database:query("SELECT id, room, text, score, n FROM m WHERE room = ? ORDER BY id", d.room) end
function D:bad(id) local r, err = self.database:query("SELECT * FROM nope"); return { r = r, err = err } end
function D:slow(id) return self.database:query(sql(self, "slow")) end

-- any statement from the client: {rows = ..., err = ...}
function D:q(id, d)
  local rows, err = self.database:query(d.sql, unpack(d.args or {}))
  return { rows = rows, err = err }
end
function D:x(id, d)
  local res, err = self.database:exec(d.sql, unpack(d.args or {}))
  return { res = res, err = err }
end
-- a statement that takes d.s seconds
function D:sleep(id, d)
  local rows, err = self.database:query(sql(self, "sleep"), d.s)
  return { rows = rows, err = err }
end
-- an I/O failure becomes an error frame
function D:must(id)
  local rows, err = self.database:query("SELECT 1 AS one")
  if not rows then error({ code = "database", message = err }) end
  return rows
end

-- booleans, NULLs and binary strings both ways
function D:types(id)
  local db = self.database
  local bytes = "\0\1\2\255\254binary\0"
  assert(db:exec("INSERT INTO m(room, flag, n, b) VALUES (?, ?, ?, ?)", "types", true, 1, bytes))
  assert(db:exec("INSERT INTO m(room, flag, n, score) VALUES (?, ?, ?, ?)", "types", false, nil, 2 ^ 40 + 0.5))
  local rows = assert(db:query("SELECT flag, n, b, score FROM m WHERE room = ? ORDER BY id", "types"))
  return {
    flags = { rows[1].flag, rows[2].flag },
    n = { rows[1].n, rows[2].n == nil },
    bytes_same = rows[1].b == bytes, bytes_len = rows[1].b and #rows[1].b,
    score = rows[2].score,
    count = #rows,
  }
end

function D:tx(id, d)
  local ok, err = pcall(function()
    return self.database:transaction(function(tx)
      tx:exec("INSERT INTO m(room, text) VALUES (?, ?)", "tx", "inside")
      if d.fail then error("boom") end
      return "committed"
    end)
  end)
  return { ok = ok, res = err }
end

-- inside fn the coroutine's own database calls see the transaction's uncommitted rows
function D:txsees(id)
  return self.database:transaction(function(tx)
    tx:exec("INSERT INTO m(room, text) VALUES (?, ?)", "txsees", "a")
    local via_tx = #assert(tx:query("SELECT id FROM m WHERE room = ?", "txsees"))
    local via_db = #assert(self.database:query("SELECT id FROM m WHERE room = ?", "txsees"))
    error({ code = "rolled_back", message = via_tx .. "/" .. via_db })
  end)
end

function D:nested(id)
  local ok, err = pcall(function()
    return self.database:transaction(function(tx)
      return self.database:transaction(function() end)
    end)
  end)
  return { ok = ok, err = tostring(err) }
end

-- holds a transaction open for d.s seconds after inserting a row
function D:txhold(id, d)
  local started = self.clock:now()
  local res, err = self.database:transaction(function(tx)
    assert(tx:exec("INSERT INTO m(room, text) VALUES (?, ?)", "held", "uncommitted"))
    local rows, serr = tx:query(sql(self, "sleep"), d.s)
    if not rows then error(serr) end
    return "committed"
  end)
  return { res = res, err = err, ms = self.clock:now() - started }
end

-- a transaction whose connection dies while fn sleeps on it: the statement fails, the
-- transaction ends with an error
function D:txlost(id, d)
  local steps = {}
  local res, err = self.database:transaction(function(tx)
    steps[#steps + 1] = tostring(tx:exec("INSERT INTO m(room, text) VALUES (?, ?)", "lost", "x") ~= nil)
    local rows, serr = tx:query(sql(self, "sleep"), d.s)
    steps[#steps + 1] = serr or "no error"
    local again, aerr = tx:query("SELECT 1 AS one")
    steps[#steps + 1] = aerr or "no error"
    return "fn returned"
  end)
  return { res = res, err = err, steps = steps }
end

return D
