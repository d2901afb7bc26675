#!/usr/bin/python3
"""history.py: the cost of room history (DESIGN 12), as two figures of issue 13.

  fanout    the same broadcast load (mw_loadgen --scenario broadcast) into a plain room and
            into a history room (tests/bench/history_app, BENCH_ROOM=plain | hist:bench): every
            client joins the room on connect and each tick is a sendMessageToRoom. Prints
            deliveries/s, p50/p99 delivery latency and server CPU for each, and the ratio
            history / plain (issue 13's target: >= 0.8). Single node, then one worker on Redis
            (the history is then a Redis stream written by one script per message).
  recovery  the time a reconnecting client needs to get 100 missed messages back: a member
            leaves, 100 messages are published (a publisher on the same or the other host waits
            until it has seen all 100, so they are stored), a new connection joins with
            since = {offset, epoch} and the clock runs from the joinRoom request until its reply
            (recovered: true) after the 100 replayed frames. Single node, then two servers on
            one Redis (the messages are published on host A, the client recovers from host B).

Needs the Release build (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release; cmake --build build)
with mw_loadgen, python3-websockets and redis-server. Every process is started here on
127.0.0.1 and stopped at the end. Figures only, never a pass/fail.

  tests/bench/history.py [--connections 1000] [--rate 1500] [--duration 8] [--rounds 200]
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP = os.path.join(ROOT, "tests", "bench", "history_app")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"history.py: server on port {port} did not answer /health in {timeout} s")


class Procs:
    """Processes started by this script, stopped (SIGTERM, then SIGKILL) when it ends."""

    def __init__(self, logdir):
        self.procs = []
        self.logdir = logdir

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.logdir, name + ".log"), "w")
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p)


def moonwire(procs, args, name, room, autojoin=True, redis=None):
    port = free_port()
    env = dict(os.environ, BENCH_ROOM=room, BENCH_AUTOJOIN="1" if autojoin else "0")
    argv = [args.moonwire, "serve", "--port", str(port), "--workers", "1", "--log-level", "warn"]
    if redis:
        argv += ["--redis", redis]
    p = procs.start(name, argv + [APP], env=env)
    wait_http(port)
    return p, port


def redis_server(procs):
    port = free_port()
    procs.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.1)
    raise SystemExit("history.py: redis-server did not start")


def fanout(args, procs, redis):
    rows = {}
    for room in ("plain", "hist:bench"):
        p, port = moonwire(procs, args, f"fanout-{room.replace(':', '-')}", room, redis=redis)
        out = subprocess.run(
            [args.loadgen, "--url", f"ws://127.0.0.1:{port}/ws", "--scenario", "broadcast",
             "-c", str(args.connections), "--rate", str(args.rate), "-d", str(args.duration),
             "--warmup", "2", "--payload", "32", "--server-pid", str(p.pid), "--json",
             "--label", room], capture_output=True, text=True, timeout=args.duration + 120)
        procs.stop(p)
        line = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if out.returncode != 0 or not line:
            sys.exit(f"history.py: mw_loadgen failed:\n{out.stdout}\n{out.stderr}")
        rows[room] = json.loads(line[-1])
    return rows


def show_fanout(title, rows):
    print(f"\n{title}")
    print(f"  {'room':<12} {'deliveries/s':>13} {'delivered %':>12} {'p50 ms':>8} {'p99 ms':>8} {'srv CPU%':>9}")
    for room, r in rows.items():
        print(f"  {room:<12} {r['msgs_per_s']:>13.0f} {100 * r['delivered_ratio']:>12.2f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {(r['server_cpu_pct'] or 0):>9.1f}")
    plain, hist = rows["plain"], rows["hist:bench"]
    ratio = hist["msgs_per_s"] / plain["msgs_per_s"] if plain["msgs_per_s"] else 0
    cpu_p = (plain['server_cpu_pct'] or 0) / max(plain["msgs_per_s"], 1)
    cpu_h = (hist['server_cpu_pct'] or 0) / max(hist["msgs_per_s"], 1)
    print(f"  history / plain: deliveries/s {ratio:.2f} (target >= 0.8); "
          f"server CPU per delivery {cpu_h / cpu_p if cpu_p else 0:.2f}x")


async def recv_json(ws, timeout=30):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def request(ws, msg_type, action, data, rid):
    await ws.send(json.dumps({"type": msg_type, "action": action, "data": data, "requestId": rid}))
    before = []
    while True:
        m = await recv_json(ws)
        if m.get("requestId") == rid:
            return before, m
        before.append(m)


async def recovery(port_pub, port_rec, rounds, missed):
    room = "hist:recovery"
    url_pub, url_rec = f"ws://127.0.0.1:{port_pub}/ws", f"ws://127.0.0.1:{port_rec}/ws"
    times = []
    async with websockets.connect(url_pub, max_size=None) as pub:
        await recv_json(pub)  # connected
        _, r = await request(pub, "system", "joinRoom", {"roomName": room}, "pj")
        assert r["response"]["success"], r
        for i in range(rounds):
            async with websockets.connect(url_rec) as c:
                await recv_json(c)
                _, r = await request(c, "system", "joinRoom", {"roomName": room}, "j")
                since = {"offset": r["response"]["data"]["offset"], "epoch": r["response"]["data"]["epoch"]}
            # the member is gone; publish `missed` messages and wait until the publisher saw them all
            seen = 0
            _, r = await request(pub, "bench", "publish", {"room": room, "n": missed}, f"p{i}")
            seen = sum(1 for m in _ if m.get("action") == "msg")
            while seen < missed:
                if (await recv_json(pub)).get("action") == "msg":
                    seen += 1
            async with websockets.connect(url_rec, max_size=None) as c:
                await recv_json(c)
                t0 = time.perf_counter()
                before, r = await request(c, "system", "joinRoom", {"roomName": room, "since": since}, "r")
                dt = time.perf_counter() - t0
                data = r["response"].get("data", {})
                if not data.get("recovered") or len(before) != missed:
                    sys.exit(f"history.py: recovery {i} got {len(before)} frames, reply {r}")
                times.append(dt * 1000)
    return times


def show_recovery(title, times, missed):
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"\n{title}: {len(times)} recoveries of {missed} missed messages, joinRoom request -> reply")
    print(f"  p50 {p(0.5):.2f} ms   p99 {p(0.99):.2f} ms   max {times[-1]:.2f} ms   "
          f"mean {statistics.mean(times):.2f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=1000, help="fan-out receivers (default 1000)")
    ap.add_argument("--rate", type=float, default=1500, help="fan-out messages/s (default 1500)")
    ap.add_argument("--duration", type=float, default=8, help="fan-out measured seconds (default 8)")
    ap.add_argument("--rounds", type=int, default=200, help="recoveries measured (default 200)")
    ap.add_argument("--missed", type=int, default=100, help="messages missed per recovery (default 100)")
    ap.add_argument("--scenarios", default="fanout recovery", help='"fanout recovery" (default both)')
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    args.moonwire = os.path.join(args.build_dir, "moonwire")
    args.loadgen = os.path.join(args.build_dir, "tests", "bench", "mw_loadgen")
    for f in (args.moonwire, args.loadgen):
        if not os.access(f, os.X_OK):
            sys.exit(f"history.py: {f} is not built (cmake --build {args.build_dir})")
    logdir = tempfile.mkdtemp(prefix="mw-history-bench-")
    print(f"logs in {logdir}")
    procs = Procs(logdir)
    try:
        redis = redis_server(procs)
        if "fanout" in args.scenarios:
            print(f"fan-out: {args.connections} receivers in one room, {args.rate:g} messages/s, "
                  f"{args.duration:g} s measured")
            show_fanout("single node (history in the worker's memory)", fanout(args, procs, None))
            show_fanout("one worker on Redis (history in a Redis stream)", fanout(args, procs, redis))
        if "recovery" in args.scenarios:
            p, port = moonwire(procs, args, "recovery-single", "none", autojoin=False)
            show_recovery("single node", asyncio.run(recovery(port, port, args.rounds, args.missed)), args.missed)
            procs.stop(p)
            _, pa = moonwire(procs, args, "recovery-a", "none", autojoin=False, redis=redis)
            _, pb = moonwire(procs, args, "recovery-b", "none", autojoin=False, redis=redis)
            show_recovery("two servers on one Redis (published on A, recovered from B)",
                          asyncio.run(recovery(pa, pb, args.rounds, args.missed)), args.missed)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
