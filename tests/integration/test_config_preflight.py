"""Settings a worker would refuse on its own are config errors at start-up and in `check`.

A bad `auth.algorithm`, an RS/ES algorithm given a secret but no `publicKeyFile`, an
unreadable or non-PEM key file, and a malformed `redis.url` used to pass the config check and
fail only inside each worker, so the supervisor restarted workers forever. Now `serve` exits
1 at once naming the key, and `moonwire check` reports the same.
"""
import pytest

from mwtest import run_cli

CASES = {
    "bad-algorithm": ('return { auth = { secret = "%s", algorithm = "HS1024" } }\n' % ("s" * 32),
                      "auth.algorithm"),
    "rs-with-secret-only": ('return { auth = { secret = "%s", algorithm = "RS256" } }\n' % ("s" * 32),
                            "auth.publicKeyFile"),
    "missing-key-file": ('return { auth = { algorithm = "ES256", publicKeyFile = "nope.pem" } }\n',
                         "auth.publicKeyFile"),
    "key-file-not-pem": ('return { auth = { algorithm = "RS256", publicKeyFile = "app.lua" } }\n',
                         "auth.publicKeyFile"),
    "redis-scheme": ('return { redis = { url = "http://127.0.0.1:6379" } }\n', "redis.url"),
    "redis-port": ('return { redis = { url = "redis://127.0.0.1:99999" } }\n', "redis.url"),
    "redis-db": ('return { redis = { url = "redis://127.0.0.1:6379/x" } }\n', "redis.url"),
}


@pytest.mark.parametrize("app_lua,key", list(CASES.values()), ids=list(CASES.keys()))
def test_worker_settings_are_checked_before_start(server, app_lua, key):
    srv = server(app_lua=app_lua, wait=False)
    rc = srv.wait_exit(20)
    assert rc == 1, f"serve must exit 1 on a config error, got {rc}\n{srv.output()}"
    assert f"config error: {key}" in srv.output(), srv.output()
    assert "worker" not in srv.log().lower() or "restart" not in srv.log().lower(), srv.log()


@pytest.mark.parametrize("app_lua,key", list(CASES.values()), ids=list(CASES.keys()))
def test_check_reports_worker_settings(app_dir, app_lua, key):
    app = app_dir(app_lua=app_lua)
    rc, out, err = run_cli(["check", str(app)])
    assert rc == 1, (rc, out, err)
    assert f"config error: {key}" in err, err


@pytest.mark.parametrize("url", ["redis://user:s3cretpw@127.0.0.1:0", "http://:s3cretpw@127.0.0.1/",
                                 "redis://:s3cretpw@127.0.0.1:6379/x"], ids=["port", "scheme", "db"])
def test_redis_url_errors_hide_the_password(app_dir, url):
    # config errors end up in logs: the URL is shown with its password replaced
    rc, out, err = run_cli(["check", str(app_dir())], app_env={"MOONWIRE_REDIS_URL": url})
    assert rc == 1, (rc, out, err)
    assert "config error: redis.url" in err, err
    assert "s3cretpw" not in out + err and ":***@127.0.0.1" in err, err


def test_a_key_file_too_large_is_refused_not_cut(app_dir):
    # a PEM followed by 20 KB of anything: silently reading the first 16 KB would hide the mistake
    from test_auth import rsa_keys
    pem = rsa_keys()[1] + b"#" * 20000 + b"\n"
    app = app_dir(app_lua='return { auth = { algorithm = "RS256", publicKeyFile = "key.pem" } }\n',
                  files={"key.pem": pem})
    rc, out, err = run_cli(["check", str(app)])
    assert rc == 1, (rc, out, err)
    assert "config error: auth.publicKeyFile" in err and "larger than" in err, err
