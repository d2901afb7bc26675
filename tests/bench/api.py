#!/usr/bin/python3
"""api.py: what the HTTP API (DESIGN 16) costs and how a flood from one address is held off.

  throughput  T threads POST /api/publish (a new connection per request: the API answers with
              Connection: close) into a room of M WebSocket members, rate limit out of the way.
              Prints requests/s, p50/p99 latency, deliveries/s seen by the members.
  flood       the same threads against the default rate limit (1000/s, burst 2000) while one
              WebSocket client pings in a loop: prints the flood's requests/s by status and the
              ping round trips (p50/p99) during the flood against a quiet baseline.

Single node, one worker, the build in build/ (RelWithDebInfo or Release). Figures only.

  tests/bench/api.py [--threads 8] [--members 50] [--duration 5]
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
import threading
import time
import urllib.request

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "bench-api-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(rate):
    app = tempfile.mkdtemp(prefix="moonwire-api-bench-")
    os.mkdir(os.path.join(app, "controllers"))
    with open(os.path.join(app, "app.lua"), "w") as f:
        f.write(f"return {{ api = {{ key = {KEY!r}, rate = {rate} }}, log = {{ level = 'warn' }} }}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOONWIRE_")}
    proc = subprocess.Popen([os.environ.get("MOONWIRE_BIN", os.path.join(ROOT, "build", "moonwire")), "serve", app,
                             "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("api.py: the server did not start")


def hammer(port, body, seconds, threads):
    """POSTs /api/publish from `threads` threads for `seconds`; returns (statuses, latencies)."""
    req = (f"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {KEY}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    statuses, lat, lock = {}, [], threading.Lock()
    end = time.monotonic() + seconds

    def run():
        mine, times = {}, []
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(req)
                    head = s.recv(128)
                code = int(head.split()[1]) if head.startswith(b"HTTP/1.1") else 0
            except OSError:
                code = -1
            times.append(time.perf_counter() - t0)
            mine[code] = mine.get(code, 0) + 1
        with lock:
            for k, v in mine.items():
                statuses[k] = statuses.get(k, 0) + v
            lat.extend(times)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return statuses, lat


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000 if values else float("nan")


async def members(port, n, room):
    out = []
    for _ in range(n):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=2 ** 22)
        await ws.recv()
        await ws.send(json.dumps({"type": "system", "action": "joinRoom", "data": {"roomName": room}, "requestId": 1}))
        await ws.recv()
        out.append(ws)
    return out


async def count(wss, seconds):
    got = [0]

    async def reader(ws):
        try:
            while True:
                await ws.recv()
                got[0] += 1
        except Exception:
            pass
    tasks = [asyncio.create_task(reader(ws)) for ws in wss]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    return got[0]


def throughput(args):
    proc, port = start("{ requests = 1e9, per = 1, burst = 1e9 }")
    try:
        body = json.dumps({"room": "bench", "message": {"type": "news", "data": {"text": "x" * 64}}}).encode()

        async def run():
            wss = await members(port, args.members, "bench")
            counter = asyncio.create_task(count(wss, args.duration + 1))
            statuses, lat = await asyncio.to_thread(hammer, port, body, args.duration, args.threads)
            delivered = await counter
            for ws in wss:
                await ws.close()
            return statuses, lat, delivered
        statuses, lat, delivered = asyncio.run(run())
        n = sum(statuses.values())
        print(f"throughput: {n / args.duration:.0f} publish requests/s ({args.threads} threads, one connection each), "
              f"statuses {statuses}, latency p50 {pct(lat, .5):.2f} ms p99 {pct(lat, .99):.2f} ms, "
              f"{delivered / args.duration:.0f} deliveries/s to {args.members} members")
    finally:
        proc.terminate()
        proc.wait(10)


def flood(args):
    proc, port = start("{ requests = 1000, per = 1, burst = 2000 }")
    try:
        body = json.dumps({"room": "nobody", "message": {"a": 1}}).encode()

        async def pings(seconds):
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
            await ws.recv()
            rtts, end = [], time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.perf_counter()
                await ws.send(json.dumps({"type": "system", "action": "ping", "requestId": 1}))
                await ws.recv()
                rtts.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)
            await ws.close()
            return rtts

        async def run():
            quiet = await pings(2)
            during = asyncio.create_task(pings(args.duration))
            statuses, lat = await asyncio.to_thread(hammer, port, body, args.duration, args.threads)
            return quiet, await during, statuses
        quiet, during, statuses = asyncio.run(run())
        n = sum(statuses.values())
        print(f"flood: {n / args.duration:.0f} requests/s from one address, statuses {statuses}; "
              f"WebSocket ping round trip quiet p50 {pct(quiet, .5):.2f} ms p99 {pct(quiet, .99):.2f} ms, "
              f"during the flood p50 {pct(during, .5):.2f} ms p99 {pct(during, .99):.2f} ms ({len(during)} pings)")
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--duration", type=float, default=5)
    args = ap.parse_args()
    throughput(args)
    flood(args)


if __name__ == "__main__":
    sys.exit(main())
