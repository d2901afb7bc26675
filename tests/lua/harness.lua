-- tests/lua/harness.lua: the few helpers the Lua unit tests use (test, eq, raises) and the
-- tally run.lua prints. Failures are collected, not raised, so one file reports all of them.
local M = { passed = 0, failed = 0, failures = {} }

local function show(v, seen)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  seen = seen or {}
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = "[" .. show(k) .. "]=" .. show(v[k], seen) end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = show

local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- Raises (as a test failure) unless actual equals expected (tables compared deeply).
function M.eq(actual, expected, what)
  if not same(actual, expected) then
    error(string.format("%s\n    expected: %s\n    actual:   %s", what or "values differ",
      show(expected), show(actual)), 2)
  end
end

function M.truthy(v, what)
  if not v then error((what or "expected a true value") .. ", got " .. show(v), 2) end
end

-- Raises unless fn() raises an error whose text contains `text` (plain match).
function M.raises(fn, text, what)
  local ok, err = pcall(fn)
  if ok then error((what or "expected an error") .. " containing " .. show(text), 2) end
  if text and not tostring(err):find(text, 1, true) then
    error((what or "wrong error") .. ": expected " .. show(text) .. " in " .. show(tostring(err)), 2)
  end
end

-- A new empty folder (removed by run.lua at exit).
M.tmpdirs = {}
function M.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute('mkdir -p "' .. path .. '"') == 0, "cannot create " .. path)
  M.tmpdirs[#M.tmpdirs + 1] = path
  return path
end

-- Writes text to path, creating its folder.
function M.write(path, text)
  os.execute('mkdir -p "' .. path:match("^(.*)/[^/]*$") .. '"')
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Runs fn with io.stdout and io.stderr captured; returns what was written to each.
function M.capture_output(fn)
  local out, err = {}, {}
  local real_out, real_err = io.stdout, io.stderr
  io.stdout = { write = function(self, ...) for _, s in ipairs({ ... }) do out[#out + 1] = s end return self end }
  io.stderr = { write = function(self, ...) for _, s in ipairs({ ... }) do err[#err + 1] = s end return self end }
  local ok, result = pcall(fn)
  io.stdout, io.stderr = real_out, real_err
  if not ok then error(result, 0) end
  return table.concat(out), table.concat(err), result
end

local current_file = "?"
function M.file(name) current_file = name end

-- Runs one test: before() (the file's reset, if any), then fn.
function M.test(name, fn)
  if M.before then M.before() end
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    M.passed = M.passed + 1
  else
    M.failed = M.failed + 1
    M.failures[#M.failures + 1] = current_file .. ": " .. name .. "\n  " .. tostring(err)
  end
end

return M
