-- tests/lua/run.lua: the Lua side's unit tests (ctest `lua`). LuaJIT runs the runtime's own
-- lua/moonwire modules with a fake `moonwire.core` (fake_core.lua) in place of the C bindings,
-- and drives them as C would: messages through the hooks, replies through resume, timers
-- fired by hand. Usage: luajit tests/lua/run.lua [test_file.lua ...]  (default: every test_*.lua)
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local root = here .. "/../.."
package.path = here .. "/?.lua;" .. root .. "/lua/?.lua;" .. package.path
-- the wire codec, built as a C module by the build (tests/CMakeLists.txt sets MW_LUA_CPATH)
package.cpath = (os.getenv("MW_LUA_CPATH") or root .. "/build/tests/lua-modules/?.so") .. ";" .. package.cpath

local t = require "harness"
local core = require "fake_core"

local files = {}
for i = 1, #arg do files[#files + 1] = arg[i] end
if #files == 0 then
  local p = io.popen('ls -1 "' .. here .. '"')
  for name in p:lines() do
    if name:match("^test_.*%.lua$") then files[#files + 1] = name end
  end
  p:close()
  table.sort(files)
end

for _, file in ipairs(files) do
  -- every file starts from freshly loaded modules and an empty fake core
  for name in pairs(package.loaded) do
    if type(name) == "string" and name:match("^moonwire") then package.loaded[name] = nil end
  end
  package.loaded["moonwire.core"] = core
  core.reset()
  t.before = nil
  t.file(file)
  local chunk, err = loadfile(here .. "/" .. file)
  if not chunk then
    t.failed = t.failed + 1
    t.failures[#t.failures + 1] = err
  else
    local ok, e = xpcall(chunk, debug.traceback, here, root)
    if not ok then
      t.failed = t.failed + 1
      t.failures[#t.failures + 1] = file .. ": " .. tostring(e)
    end
  end
end

for _, dir in ipairs(t.tmpdirs) do os.execute('rm -rf "' .. dir .. '"') end
for _, f in ipairs(t.failures) do io.stderr:write("FAIL ", f, "\n") end
io.stdout:write(string.format("lua: %d passed, %d failed (%d files)\n", t.passed, t.failed, #files))
os.exit(t.failed == 0 and 0 or 1)
