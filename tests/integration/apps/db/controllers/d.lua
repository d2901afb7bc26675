-- d: database binding test controller (SQLite): schema, inserts, queries, errors, transactions, a slow query.
local D = {}
function D:setup(id) return self.database:exec("CREATE TABLE IF NOT EXISTS m(id INTEGER PRIMARY KEY, room TEXT, text TEXT, score REAL, b BLOB, n INTEGER)") end
function D:add(id, d) return self.database:exec("INSERT INTO m(room, text, score, n) VALUES (?, ?, ?, ?)", d.room, d.text, d.score, d.n) end
function D:list(id, d) return self.database:query("SELECT id, room, text, score, n FROM m WHERE room = ? ORDER BY id", d.room) end
function D:bad(id) local r, err = self.database:query("SELECT * FROM nope"); return { r = r, err = err } end
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
function D:slow(id) return self.database:query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) SELECT count(*) AS n FROM c") end
return D
