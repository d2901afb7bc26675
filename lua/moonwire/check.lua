-- moonwire.check: `moonwire check` (and serve's quiet pre-check). Compiles every lib/ module,
-- compiles and loads every controller and job, and matches app.lua routes against the
-- controllers, printing each error as file:line, so a broken app is refused before it serves.
local core = require "moonwire.core"
local router = require "moonwire.router"

local M = {}

-- The *.lua files under dir and its subfolders, in a stable order (each folder's files sorted,
-- then its subfolders sorted).
local function lua_files_under(dir, out)
  out = out or {}
  for _, file in ipairs(core.list_dir(dir)) do out[#out + 1] = dir .. "/" .. file end
  for _, sub in ipairs(core.list_dir(dir, true)) do lua_files_under(dir .. "/" .. sub, out) end
  return out
end

-- opts = {config, app_dir, runtime_dir, dev, quiet}. Returns true when everything compiles.
function M.run(opts)
  local config = opts.config
  package.loaded["moonwire"] = package.loaded["moonwire"] or
    { config = config, emptyArray = require("moonwire.json").emptyArray, array = require("moonwire.json").array }
  local good = true
  local count = 0
  -- lib/ is only compiled, not run (a module runs when something requires it), and only by
  -- `moonwire check`: serve's quiet pre-check must not refuse to start over a module nothing
  -- uses. First, so a broken module is named before the controllers that require it.
  if not opts.quiet then
    for _, path in ipairs(lua_files_under(opts.app_dir .. "/lib")) do
      local chunk, err = loadfile(path)
      count = count + 1
      if not chunk then
        io.stderr:write(err, "\n")
        good = false
      end
    end
  end
  local dirs = router.controller_dirs(opts)
  dirs[#dirs + 1] = opts.app_dir .. "/jobs"
  local controllers = {}
  for _, dir in ipairs(dirs) do
    for _, file in ipairs(core.list_dir(dir)) do
      local path = dir .. "/" .. file
      local chunk, err = loadfile(path)
      count = count + 1
      if not chunk then
        io.stderr:write(err, "\n")
        good = false
      elseif not dir:match("/jobs$") then
        local ok, ctrl = pcall(router.load_controller, path, file:sub(1, -5), {})
        if ok then controllers[file:sub(1, -5)] = ctrl
        else io.stderr:write(tostring(ctrl), "\n"); good = false end
      end
    end
  end
  if good then
    local ok, err = pcall(router.build_routes, config.routes, controllers)
    if not ok then io.stderr:write(tostring(err), "\n"); good = false end
  end
  if good and not opts.quiet then
    io.stdout:write(string.format("ok: app.lua and %d Lua file(s) in %s compile\n", count, opts.app_dir))
  end
  return good
end

return M
