"""The LuaLS annotations in lua/types/moonwire.lua stay complete.

A controller lists, inside the real server, every public method of every binding (the object
and its metatable __index chain; `_private` names skipped), the keys of the records the
bindings return, the job a processor receives and config.lua's schema; the test checks that
each one is declared for the right class. The meta file itself is parsed with a few regular
expressions: `---@class NAME[: PARENT]` followed by `---@field name[?] TYPE` lines, and
`local X = {}` under a class followed by `function X:method(` definitions.
"""
import json
import re
from pathlib import Path

import mwtest

ROOT = Path(__file__).resolve().parents[2]
TYPES = ROOT / "lua" / "types" / "moonwire.lua"
CONFIG_TYPES = ROOT / "lua" / "types" / "moonwire-config.lua"  # the app.lua table

# Functions reachable through a binding's metatable that are not methods of its API: each
# binding module's constructor, and server.lua's helper Server.deep_copy.
NOT_API = {"new", "deep_copy"}

INTROSPECT = r'''
local Introspect = {}

-- every public function reachable from obj: its own fields, then its __index chain
local function methods(obj)
  local out, seen, t, depth = {}, {}, obj, 0
  while type(t) == "table" and depth < 8 do
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" and not seen[k] then
        seen[k] = true
        out[#out + 1] = k
      end
    end
    local mt = getmetatable(t)
    t = mt and mt.__index
    depth = depth + 1
  end
  table.sort(out)
  return out
end

local function keys(t)
  local out = {}
  for k in pairs(t or {}) do if type(k) == "string" then out[#out + 1] = k end end
  table.sort(out)
  return out
end

-- "auth.secret", "limits.rate.burst", ...: every key of config.lua's schema
local function schema_paths(spec, prefix, out)
  for k, v in pairs(spec) do
    out[#out + 1] = prefix .. k
    if type(v) == "table" then schema_paths(v, prefix .. k .. ".", out) end
  end
  return out
end

function Introspect:list(clientId)
  local mw = require("moonwire")
  local found = { methods = {}, keys = {} }
  for _, name in ipairs({ "webSocketServer", "timer", "database", "queue", "log", "clock" }) do
    found.methods[name] = methods(mw[name])
  end
  -- nil without --redis: the class its instances get
  found.methods.redis = methods(mw.redis or require("moonwire.redis"))
  local handle = mw.timer:after(3600, function() end)
  found.methods.timerHandle = methods(handle)
  handle:stop()
  local ok, err = mw.database:transaction(function(tx)
    found.methods.transaction = methods(tx)
    return true
  end)
  assert(ok, err)

  found.keys.module = keys(mw)
  found.keys.worker = keys(mw.worker)
  found.keys.stats = keys(mw.webSocketServer:stats())
  found.keys.client = keys(mw.webSocketServer:getClient(clientId))
  found.keys.controller = keys(getmetatable(self).__index)

  assert(mw.queue:add("probe", { x = 1 }))
  for _ = 1, 100 do
    if package.loaded["probe.job"] then break end
    mw.timer:sleep(0.05)
  end
  found.keys.job = package.loaded["probe.job"]

  found.schema = schema_paths(require("moonwire.config").schema, "", {})
  table.sort(found.schema)

  -- the annotations are never loaded by the runtime, yet they are valid Lua
  found.loaded = {}
  for name in pairs(package.loaded) do
    if name:find("types") then found.loaded[#found.loaded + 1] = name end
  end
  local chunk, cerr = loadfile(%(types)q)
  found.metaCompiles = chunk ~= nil or cerr
  return found
end

return Introspect
'''

PROBE_JOB = r'''
return function(job)
  local ks = {}
  for k in pairs(job) do ks[#ks + 1] = k end
  table.sort(ks)
  package.loaded["probe.job"] = ks
  return true
end
'''


def lua_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_types(text):
    """class name -> {"fields": {name: type}, "methods": set, "parents": [names]}"""
    classes, owner_of, current = {}, {}, None
    for line in text.splitlines():
        m = re.match(r"---@class\s+([\w.]+)\s*(?::\s*(.+))?$", line)
        if m:
            current = m.group(1)
            parents = [p.strip() for p in (m.group(2) or "").split(",") if p.strip()]
            classes.setdefault(current, {"fields": {}, "methods": set(), "parents": parents})
            continue
        m = re.match(r"---@field\s+(\w+)\??\s+(\S+)", line)
        if m and current:
            classes[current]["fields"][m.group(1)] = m.group(2).rstrip("?")
            continue
        m = re.match(r"local\s+(\w+)\s*=\s*\{\}", line)
        if m and current:
            owner_of[m.group(1)] = current
        m = re.match(r"function\s+(\w+)[:.](\w+)\s*\(", line)
        if m:
            assert m.group(1) in owner_of, f"{line!r}: {m.group(1)} is not declared as a ---@class"
            classes[owner_of[m.group(1)]]["methods"].add(m.group(2))
        if not line.startswith("---"):
            current = None
    return classes


def members(classes, name):
    """Fields and methods of a class, its parents' included."""
    c = classes[name]
    names = set(c["fields"]) | c["methods"]
    for p in c["parents"]:
        names |= members(classes, p)
    return names


def field_type(classes, name, field):
    c = classes[name]
    if field in c["fields"]:
        return c["fields"][field]
    for p in c["parents"]:
        t = field_type(classes, p, field)
        if t:
            return t
    return None


def as_list(v):
    return [] if v == {} else v  # lua-cjson sends an empty table as {}


def introspect(server):
    srv = server(args=("--database", "sqlite::memory:"), files={
        "controllers/introspect.lua": INTROSPECT.replace("%(types)q", lua_quote(str(TYPES))),
        "jobs/probe.lua": PROBE_JOB,
    })
    c = srv.client()
    reply = c.request("introspect", "list", request_id=1, timeout=15)
    assert "response" in reply, reply
    return reply["response"], c


def test_every_binding_method_and_record_is_annotated(server):
    found, c = introspect(server)
    classes = parse_types(TYPES.read_text() + "\n" + CONFIG_TYPES.read_text())
    bindings = classes["moonwire.Bindings"]["fields"]
    missing = []

    # the module: every key of require("moonwire") (and of a controller's self) is a field
    for key in as_list(found["keys"]["module"]) + as_list(found["keys"]["controller"]):
        if key not in bindings:
            missing.append(f"moonwire.Bindings.{key}")
    assert "redis" in bindings and "webSocketServer" in bindings
    assert set(members(classes, "moonwire.Controller")) >= set(bindings)

    # methods: every public function of every binding, in the class the Bindings field names
    class_of = {name: bindings[name] for name in found["methods"] if name in bindings}
    class_of.update({"timerHandle": "moonwire.TimerHandle", "transaction": "moonwire.Transaction"})
    for binding, names in found["methods"].items():
        cls = class_of[binding]
        assert cls in classes, f"{binding}: class {cls} is not declared"
        for name in as_list(names):
            if name not in NOT_API and name not in classes[cls]["methods"]:
                missing.append(f"{cls}:{name}() (the {binding} binding)")
    assert len(classes["moonwire.WebSocketServer"]["methods"]) >= 15

    # records the bindings return
    records = {"worker": bindings["worker"], "stats": "moonwire.Stats", "client": "moonwire.Client",
               "job": "moonwire.Job"}
    assert found["keys"]["job"], "the probe job did not run"
    for what, cls in records.items():
        for key in as_list(found["keys"][what]):
            if key not in members(classes, cls):
                missing.append(f"{cls}.{key} (a key of the {what} record)")
    assert not missing, "not annotated in lua/types/moonwire.lua: " + ", ".join(missing)
    c.assert_served()


def test_every_config_key_is_annotated(server):
    found, _ = introspect(server)
    classes = parse_types(TYPES.read_text() + "\n" + CONFIG_TYPES.read_text())
    assert "moonwire.Config" in classes
    missing = []
    for path in found["schema"]:
        cls, parts = "moonwire.Config", path.split(".")
        for i, part in enumerate(parts):
            t = field_type(classes, cls, part)
            if t is None:
                missing.append(f"{path} (no field {part} in {cls})")
                break
            if i < len(parts) - 1:
                cls = t
                if cls not in classes:
                    missing.append(f"{path} ({'.'.join(parts[:i + 1])} has type {t}, not a declared class)")
                    break
    assert not missing, "config keys not annotated in moonwire.Config: " + ", ".join(missing)
    # the hooks have function types, the lists element types
    events = classes["moonwire.EventsConfig"]["fields"]
    assert all(t.startswith("fun(") for t in events.values()), events
    assert classes["moonwire.Config"]["fields"]["subscribers"] == "moonwire.Subscriber[]"
    assert classes["moonwire.Config"]["fields"]["routes"] == "moonwire.Route[]"


def test_meta_file_is_valid_lua_and_never_loaded(server):
    found, _ = introspect(server)
    assert found["metaCompiles"] is True, found["metaCompiles"]
    assert as_list(found["loaded"]) == [], found["loaded"]
    text = TYPES.read_text()
    assert text.startswith("---@meta moonwire\n")
    # require("moonwire") in the meta file's own module type
    assert text.rstrip().endswith("return moonwire")


def test_check_ignores_the_annotations(app_dir):
    app = app_dir(files={"jobs/probe.lua": PROBE_JOB})
    rc, out, err = mwtest.run_cli(["check", app])
    assert rc == 0, out + err
    # it compiles the built-in controllers, the app's controllers and jobs, nothing else
    expected = sum(len(list(d.glob("*.lua"))) for d in (ROOT / "controllers", app / "controllers", app / "jobs"))
    assert f"app.lua and {expected} Lua file(s)" in out, out
    assert "types" not in out + err


def test_hello_world_luarc_points_at_the_types():
    luarc = ROOT / "examples" / "hello-world" / ".luarc.json"
    cfg = json.loads(luarc.read_text())
    assert cfg["runtime.version"] == "LuaJIT"
    libs = [(luarc.parent / p).resolve() for p in cfg["workspace.library"]]
    assert TYPES.parent.resolve() in libs, libs
