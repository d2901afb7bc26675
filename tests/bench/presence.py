#!/usr/bin/python3
"""presence.py: the cost of presence and join/leave events (DESIGN 13), figures for issue 14.

  storm     N raw clients connect, then all send system/joinRoom to one joinLeave room at once;
            an observer (a member already) counts the N presence/join events. Prints the time
            from the first join sent to the last event seen, the events/s, and the time of one
            system/presence with N + 1 members (the reply lists 1000). The joiners never read:
            each is sent ~N events (N x ~110 bytes), which stays within its send queue.
  seeded    (Redis) 10 000 members written to Redis as a live fake worker's records; the time of
            system/presence (bounded: 1000 listed) and of getPresence without a limit.

Single node, then one worker on Redis. Every process is started here on 127.0.0.1 and stopped
at the end. Figures only, never a pass/fail. Uses the test helpers of tests/integration.

  tests/bench/presence.py [--clients 2000] [--build build]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import mwtest  # noqa: E402

APP = """
return {
  rooms = { options = {
    { pattern = "p:*", presence = true, joinLeave = true },
    { pattern = "quiet:*", presence = true },
  } },
  limits = { rate = { messages = 100000, per = 1, burst = 100000 } },
}
"""

CONTROLLER = """
local B = {}
function B:presence(clientId, data) return #self.webSocketServer:getPresence(data.room).clients end
return B
"""


def start(tmp, name, args):
    app = mwtest.make_app(mwtest.Path(tmp) / ("app-" + name), APP, {"controllers/b.lua": CONTROLLER})
    work = os.path.join(tmp, "run-" + name)
    os.makedirs(work)
    port = mwtest.free_port()
    srv = mwtest.Server(app, port, ["--host", "127.0.0.1", "--port", str(port), *args], mwtest.clean_env(), work)
    srv.spawn()
    srv.wait_ready()
    return srv


def timed_request(c, type_, action, data, rid):
    t0 = time.monotonic()
    r = c.request(type_, action, data, request_id=rid, timeout=120)
    return time.monotonic() - t0, r


def storm(srv, n, label):
    observer = mwtest.RawWS(srv.port)
    observer.request("system", "joinRoom", {"roomName": "p:storm"}, request_id="j")
    raws = [mwtest.RawWS(srv.port) for _ in range(n)]
    t0 = time.monotonic()
    for c in raws:
        c.send_json({"type": "system", "action": "joinRoom", "data": {"roomName": "p:storm"}})
    seen = 0
    while seen < n:
        m = observer.recv_json(timeout=120)
        if m.get("type") == "presence":
            seen += 1
    took = time.monotonic() - t0
    dt, r = timed_request(observer, "system", "presence", {"roomName": "p:storm"}, "p")
    d = r["response"]["data"]
    print(f"{label}: {n} joins -> {n} events to the observer (and {n * (n - 1) // 2} to the joiners) "
          f"in {took:.2f} s ({n / took:.0f} joins/s); system/presence of {d['count']} members: "
          f"{dt * 1000:.1f} ms, {len(d['clients'])} listed")
    for c in raws + [observer]:
        c.close()


def seeded(srv, redis_port, label):
    cli = shutil.which("redis-cli")
    ms = int(time.time() * 1000)

    def rc(*args):
        subprocess.run([cli, "-p", str(redis_port), *map(str, args)], check=True, capture_output=True)
    rc("SET", "moonwire:w:FAKEBENCH", "1", "PX", "600000")
    rc("SADD", "moonwire:workers", "FAKEBENCH")
    rc("EVAL", "for i = 1, 10000 do redis.call('HSET', KEYS[1], 'fakeclientid-0123456789-' .. i, "
       "ARGV[1] .. '|su' .. i) end", 1, "moonwire:pr:quiet:big:FAKEBENCH", ms)
    rc("SADD", "moonwire:w:FAKEBENCH:pr", "quiet:big")
    c = mwtest.RawWS(srv.port)
    c.request("system", "joinRoom", {"roomName": "quiet:big"}, request_id="j")
    times = []
    for i in range(20):
        dt, r = timed_request(c, "system", "presence", {"roomName": "quiet:big"}, f"p{i}")
        times.append(dt)
    times.sort()
    size = len(mwtest.json.dumps(r))
    dt_all, r2 = timed_request(c, "b", "presence", {"room": "quiet:big"}, "all")
    print(f"{label}: system/presence of {r['response']['data']['count']} members: median "
          f"{times[len(times) // 2] * 1000:.1f} ms, reply {size} bytes (1000 listed); "
          f"getPresence listing all {r2['response']}: {dt_all * 1000:.1f} ms")
    c.close()
    rc("DEL", "moonwire:w:FAKEBENCH")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        srv = start(tmp, "single", [])
        try:
            storm(srv, args.clients, "single node")
        finally:
            srv.stop()
        redis_port = mwtest.free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no"], stdout=subprocess.DEVNULL, cwd=tmp)
        try:
            time.sleep(0.5)
            srv = start(tmp, "redis", ["--redis", f"redis://127.0.0.1:{redis_port}/0"])
            try:
                storm(srv, args.clients, "one worker on Redis")
                seeded(srv, redis_port, "one worker on Redis")
            finally:
                srv.stop()
        finally:
            redis.terminate()
            redis.wait()


if __name__ == "__main__":
    main()
