"""Command line (docs/reference.md section 1): help, version, check, config errors, env vars, logs."""
import json
import re
import socket
import subprocess

import pytest

from mwtest import ROOT, clean_env, free_port, http_get, http_request, run_cli, upgrade_request

BAD_CONTROLLER = """local M = {}
function M:x(clientId, data)
  local y = = 1
  return y
end
return M
"""


# --------------------------------------------------------------------------- help / version

@pytest.mark.parametrize("args,words", [
    (["--help"], ["serve", "check", "version"]),
    (["serve", "--help"], ["--port", "--host", "--path", "--dev", "--log-format"]),
    (["check", "--help"], ["check"]),
])
def test_help(args, words):
    rc, out, err = run_cli(args)
    assert rc == 0, (rc, out, err)
    text = out + err
    assert "usage" in text.lower(), text
    for word in words:
        assert word in text, f"{word!r} missing from `moonwire {' '.join(args)}` output:\n{text}"


def test_version():
    rc, out, err = run_cli(["version"])
    assert rc == 0, (rc, out, err)
    assert re.search(r"\d+\.\d+\.\d+", out), f"no version number on stdout: {out!r} {err!r}"


def test_version_names_every_library():
    # what `moonwire version --help` and `moonwire --help` promise: one line per library
    rc, out, err = run_cli(["version"])
    assert rc == 0, (rc, out, err)
    for lib in ["moonwire", "libuv", "LuaJIT", "wslay", "llhttp", "hiredis", "libjwt", "SQLite",
                "libpq", "OpenSSL"]:
        assert re.search(rf"^{lib} \d+\.\d+", out, re.M), f"no '{lib} X.Y' line in:\n{out}"


def test_unknown_command_or_flag_fails():
    rc, out, err = run_cli(["serve", "--no-such-flag"], timeout=10)
    assert rc != 0
    assert "no-such-flag" in out + err


# --------------------------------------------------------------------------- check

def test_check_good_app(app_dir):
    app = app_dir(app_lua='return { routes = { { type = "a", action = "b", controller = "echo", '
                          'method = "say" } } }\n')
    rc, out, err = run_cli(["check", app])
    assert rc == 0, (rc, out, err)


def test_check_good_app_without_app_lua(app_dir):
    rc, out, err = run_cli(["check", app_dir()])
    assert rc == 0, (rc, out, err)


def test_check_default_app_dir_is_cwd(app_dir):
    app = app_dir(files={"controllers/bad.lua": BAD_CONTROLLER})
    rc, out, err = run_cli(["check"], cwd=app)
    assert rc == 1, (rc, out, err)
    assert "bad.lua:3" in out + err


def test_check_syntax_error_reports_file_and_line(app_dir):
    app = app_dir(files={"controllers/bad.lua": BAD_CONTROLLER})
    rc, out, err = run_cli(["check", app])
    assert rc == 1, (rc, out, err)
    assert re.search(r"controllers/bad\.lua:3\b", out + err), out + err


def test_check_broken_app_lua(app_dir):
    app = app_dir(app_lua="return {\n  port = 8080,\n  limits = { = }\n}\n")
    rc, out, err = run_cli(["check", app])
    assert rc == 1, (rc, out, err)
    assert re.search(r"app\.lua:3\b", out + err), out + err


def test_check_config_error(app_dir):
    app = app_dir(app_lua='return { limits = { maxMessageSize = "big" } }\n')
    rc, out, err = run_cli(["check", app])
    assert rc == 1, (rc, out, err)
    assert "limits.maxMessageSize" in out + err


def test_check_lists_every_config_error_sorted_by_key(app_dir):
    # written in an order that is neither sorted nor pairs() order: the output is sorted by key
    app = app_dir(app_lua='return {\n  port = "eighty",\n  limits = { maxMessageSize = "big" },\n'
                          '  bogusKey = 1,\n}\n')
    outputs = set()
    for _ in range(3):
        rc, out, err = run_cli(["check", app])
        assert rc == 1, (rc, out, err)
        keys = re.findall(r"config error: (\S+)", out + err)
        assert keys == ["bogusKey", "limits.maxMessageSize", "port"], out + err
        outputs.add(out + err)
    assert len(outputs) == 1, "the same app gives the same output every time"


def test_serve_lists_every_config_error(server):
    srv = server(app_lua='return { port = "eighty", limits = { rate = { burst = 0 } } }\n', wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0
    keys = re.findall(r"config error: (\S+)", srv.output())
    assert keys == ["limits.rate.burst", "port"], srv.output()


LIB_BROKEN = """local M = {}
function M.add(a, b)
  return a +
end
return M
"""


def test_check_compiles_lib_modules(app_dir):
    # lib/ modules are compiled (recursively) even when no controller requires them
    app = app_dir(files={"lib/util.lua": LIB_BROKEN, "lib/ok.lua": "return {}\n",
                         "lib/deep/er.lua": "local x = = 1\nreturn x\n"})
    rc, out, err = run_cli(["check", app])
    assert rc == 1, (rc, out, err)
    assert re.search(r"lib/util\.lua:4\b", out + err), out + err
    assert re.search(r"lib/deep/er\.lua:1\b", out + err), out + err
    assert "lib/ok.lua" not in out + err


def test_check_good_lib_modules(app_dir):
    app = app_dir(files={"lib/util.lua": "return { add = function(a, b) return a + b end }\n"})
    rc, out, err = run_cli(["check", app])
    assert rc == 0, (rc, out, err)


# --------------------------------------------------------------------------- config errors

AUTH_REQUIRED = "return { auth = { required = true } }\n"


@pytest.mark.parametrize("app_lua,env,rc_want", [
    (AUTH_REQUIRED, {}, 1),
    ('return { auth = { required = true, secret = os.getenv("NO_SUCH_VAR_HERE") } }\n', {}, 1),
    (AUTH_REQUIRED, {"MOONWIRE_JWT_SECRET": "s" * 32}, 0),
    ('return { auth = { required = true, algorithm = "RS256", publicKeyFile = "key.pem" } }\n', {}, 0),
], ids=["no-secret", "unset-env-secret", "env-secret", "public-key-file"])
def test_auth_required_needs_a_key_at_check(app_dir, app_lua, env, rc_want):
    # without a key every token fails: every connection would be refused with 401
    from test_auth import rsa_keys
    files = {"key.pem": rsa_keys()[1].decode()} if "publicKeyFile" in app_lua else None
    rc, out, err = run_cli(["check", app_dir(app_lua=app_lua, files=files)], app_env=env)
    assert rc == rc_want, (rc, out, err)
    if rc_want:
        assert "config error: auth.required" in out + err, out + err
        assert "auth.secret" in out + err and "auth.publicKeyFile" in out + err, out + err


def test_auth_required_needs_a_key_at_serve(server):
    srv = server(app_lua=AUTH_REQUIRED, wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0
    assert "config error: auth.required" in srv.output(), srv.output()
    # the same app with --jwt-secret starts (server() waits for /health)
    server(app_lua=AUTH_REQUIRED, args=["--jwt-secret", "s" * 32])


@pytest.mark.parametrize("app_lua,key", [
    ("return { bogusKey = 1 }\n", "bogusKey"),
    ('return { limits = { maxMessageSize = "big" } }\n', "limits.maxMessageSize"),
    ("return { limits = { noSuchLimit = 1 } }\n", "limits.noSuchLimit"),
    ('return { port = "eighty" }\n', "port"),
    ("return { routes = 5 }\n", "routes"),
], ids=["unknown-top-level", "wrong-type", "unknown-nested", "port-type", "routes-type"])
def test_config_error_stops_startup(server, app_lua, key):
    srv = server(app_lua=app_lua, wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None, "serve must exit on a config error"
    assert rc != 0
    assert key in srv.output(), srv.output()


def test_app_lua_that_does_not_return_a_table(server):
    srv = server(app_lua="return 42\n", wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0
    assert "app.lua" in srv.output()


def test_workers_above_one_need_redis(server):
    srv = server(args=["--workers", "2"], wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0
    assert "redis" in srv.output().lower()


def test_partial_limits_keep_other_defaults(server):
    # only maxFragments given: maxMessageSize stays 65536
    srv = server(app_lua="return { limits = { maxFragments = 8 } }\n")
    w = srv.client()
    c = srv.client()
    text = "z" * 60000
    c.send_text(json.dumps({"type": "echo", "action": "say", "data": text, "requestId": 1}))
    assert c.recv_json() == {"type": "echo", "action": "say", "response": text, "requestId": 1}
    w.assert_served()


# --------------------------------------------------------------------------- env vs flags

def test_env_port_and_path(server):
    port = free_port()
    srv = server(flags=False, port=port, path="/envpath",
                 env={"MOONWIRE_PORT": str(port), "MOONWIRE_PATH": "/envpath", "MOONWIRE_HOST": "127.0.0.1"})
    w = srv.client()
    assert http_request(port, upgrade_request(port, path="/envpath")).status == 101
    assert http_request(port, upgrade_request(port, path="/ws")).status == 404
    w.assert_served()


def test_flags_beat_env(server):
    env_port, flag_port = free_port(), free_port()
    srv = server(port=flag_port, args=["--path", "/flagpath"], path="/flagpath",
                 env={"MOONWIRE_PORT": str(env_port), "MOONWIRE_PATH": "/envpath"})
    w = srv.client()
    assert http_request(flag_port, upgrade_request(flag_port, path="/flagpath")).status == 101
    assert http_request(flag_port, upgrade_request(flag_port, path="/envpath")).status == 404
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", env_port), timeout=1).close()
    w.assert_served()


def test_env_beats_app_lua(server):
    app_port, env_port = free_port(), free_port()
    srv = server(flags=False, port=env_port, app_lua=f'return {{ host = "127.0.0.1", port = {app_port} }}\n',
                 env={"MOONWIRE_PORT": str(env_port)})
    w = srv.client()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", app_port), timeout=1).close()
    w.assert_served()


def test_app_lua_port_and_path_used(server):
    port = free_port()
    srv = server(flags=False, port=port, path="/apppath",
                 app_lua=f'return {{ host = "127.0.0.1", port = {port}, path = "/apppath" }}\n')
    w = srv.client()
    assert http_request(port, upgrade_request(port, path="/ws")).status == 404
    w.assert_served()


def test_second_instance_on_same_port_fails(server):
    first = server()
    w = first.client()
    second = server(port=first.port, wait=False)
    rc = second.wait_exit(10)
    assert rc is not None, "the second instance must not start on a port in use"
    assert rc != 0
    assert "address in use" in second.output().lower(), second.output()
    assert http_get(first.port, "/health").status == 200
    w.assert_served()


# --------------------------------------------------------------------------- logs

def test_json_log_format_every_line_is_json(server):
    srv = server(args=["--log-format", "json"])
    w = srv.client()
    c = srv.client()
    c.send_json({"type": "fail", "action": "explode", "requestId": 1})
    assert c.recv_json()["data"]["code"] == "internal"
    c.send_text("not json")
    c.recv_json()
    c.send_frame(0x8, b"\x03\xe8")
    c.wait_eof(3)
    w.assert_served()
    w.close()
    assert srv.stop() == []
    lines = [line for line in srv.log().splitlines() if line.strip()]
    assert len(lines) >= 3, srv.log()
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {line!r}")
        assert isinstance(obj, dict), line
    # the multi-line traceback is inside one JSON value
    assert any("boom" in line and "traceback" in line.lower() for line in lines)


def test_start_line_mentions_address(server):
    srv = server()
    w = srv.client()
    text = srv.wait_log(lambda t: any("127.0.0.1" in l and str(srv.port) in l for l in t.splitlines()))
    assert text is not None, srv.log()
    w.assert_served()


def test_connect_and_disconnect_are_logged(server):
    srv = server()
    w = srv.client()
    c = srv.client()
    cid = c.client_id
    c.send_frame(0x8, b"\x10\xe1bye")  # 4321
    c.wait_eof(3)

    def logged(text):
        lines = [l for l in text.splitlines() if cid in l]
        return len(lines) >= 2 and any("4321" in l for l in lines)
    text = srv.wait_log(logged)
    assert text is not None, f"expected connect and disconnect lines with {cid} and code 4321:\n{srv.log()}"
    lines = [l for l in text.splitlines() if cid in l]
    assert "connect" in lines[0].lower()
    w.assert_served()


def test_log_level_debug_logs_debug_lines(server):
    srv = server(args=["--log-level", "debug"])
    w = srv.client()
    assert srv.wait_log(lambda t: "debug" in t.lower()) is not None, srv.log()
    w.assert_served()


@pytest.mark.parametrize("url", ["mysql://user:secret@127.0.0.1/db", "sqlite:", "postgresql:/nohost"])
def test_a_database_url_of_an_unknown_kind_stops_startup(server, url):
    srv = server(args=["--database", url], wait=False)
    rc = srv.wait_exit(10)
    assert rc is not None and rc != 0
    out = srv.output()
    assert "config error: database.url must be sqlite:PATH, sqlite::memory: or postgres://" in out, out
    assert "secret" not in out, "the password must not be printed"


# --------------------------------------------------------------------------- scripts/start

@pytest.mark.parametrize("args,env,url", [
    ([], {}, "http://localhost:8080"),
    (["--port", "9000"], {}, "http://localhost:9000"),
    (["--port=9001", "--host", "127.0.0.1"], {}, "http://127.0.0.1:9001"),
    ([], {"MOONWIRE_PORT": "8500"}, "http://localhost:8500"),
    (["--port", "8600"], {"MOONWIRE_PORT": "8500", "MOONWIRE_HOST": "0.0.0.0"}, "http://localhost:8600"),
    (["examples/chat", "--host", "::1", "--port", "7000"], {}, "http://[::1]:7000"),
], ids=["default", "port", "port-eq-host", "env-port", "flag-beats-env", "app-dir-ipv6"])
def test_start_script_prints_the_url_it_serves(args, env, url):
    # the dry run skips install-deps and the build (and never starts a server)
    proc = subprocess.run([str(ROOT / "scripts" / "start"), *args], capture_output=True, text=True,
                          timeout=20, cwd=ROOT, env=clean_env({**env, "MOONWIRE_START_DRY_RUN": "1"}))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert f"Open {url} in a browser" in proc.stdout, proc.stdout
    assert "moonwire serve " in proc.stdout, proc.stdout


def test_start_script_reads_the_port_from_app_lua(tmp_path):
    (tmp_path / "app.lua").write_text("return {\n  -- port = 1234,\n  port = 9100,\n}\n")
    proc = subprocess.run([str(ROOT / "scripts" / "start"), str(tmp_path)], capture_output=True, text=True,
                          timeout=20, env=clean_env({"MOONWIRE_START_DRY_RUN": "1"}))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Open http://localhost:9100 in a browser" in proc.stdout, proc.stdout
