#!/usr/bin/env python3
"""examples/ticker/smoke_test.py: drives a running ticker server with several clients and checks
the feed end to end: each client gets prices for its symbols only, about 2 per second per
symbol, never twice (one publisher in the whole cluster), plus the controller's validation.

    build/moonwire serve examples/ticker --port 8080                          # one worker
    build/moonwire serve examples/ticker --workers 2 --redis redis://127.0.0.1:6379
    python3 examples/ticker/smoke_test.py [ws://127.0.0.1:8080/ws] [--workers N] [--seconds S]

--workers N keeps connecting clients (up to 40) until N different workers hold at least one
(what the `whoami` action says), so a cluster is checked across workers; give two URLs to
spread the clients over two hosts. Needs the `websockets` module (Debian:
python3-websockets). Exit status 0 when every check passed.
"""
import argparse
import asyncio
import json
import time
from collections import defaultdict

import websockets

TIMEOUT = 5
SYMBOL_SETS = [["AAPL"], ["MSFT", "GOOG"], ["AAPL", "TSLA", "NVDA"], ["AMZN"], ["META", "NFLX", "AMD"], ["INTC", "aapl"]]


class Fail(Exception):
    pass


def check(cond, what, *frames):
    if not cond:
        raise Fail(what + "".join("\n    " + json.dumps(f) for f in frames))


class Client:
    def __init__(self, ws, url):
        self.ws, self.url = ws, url
        self.next_id = 1
        self.replies = {}  # requestId -> future
        self.prices = []   # (local receive time, data) of every ticker/price push
        self.others = []   # any other frame without a requestId
        self.reader = None

    @classmethod
    async def connect(cls, url):
        ws = await websockets.connect(url, open_timeout=TIMEOUT)
        self = cls(ws, url)
        hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        check(hello.get("type") == "system" and hello.get("action") == "connected", "first frame is system/connected", hello)
        self.client_id = hello["data"]["clientId"]
        self.reader = asyncio.create_task(self.read())
        return self

    async def read(self):
        try:
            async for raw in self.ws:
                f = json.loads(raw)
                rid = f.get("requestId", (f.get("data") or {}).get("requestId") if f.get("type") == "error" else None)
                if rid is not None and rid in self.replies:
                    self.replies.pop(rid).set_result(f)
                elif f.get("type") == "ticker" and f.get("action") == "price":
                    self.prices.append((time.monotonic(), f["data"]))
                else:
                    self.others.append(f)
        except websockets.exceptions.ConnectionClosed:
            pass

    async def call(self, type_, action, data=None):
        """Returns ("ok", response) or ("error", data of the error frame)."""
        rid = self.next_id
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.replies[rid] = fut
        msg = {"type": type_, "action": action, "requestId": rid}
        if data is not None:
            msg["data"] = data
        await self.ws.send(json.dumps(msg))
        f = await asyncio.wait_for(fut, TIMEOUT)
        return ("error", f["data"]) if f.get("type") == "error" else ("ok", f.get("response"))

    async def ok(self, action, data=None, type_="ticker"):
        kind, value = await self.call(type_, action, data)
        check(kind == "ok", f"{type_}/{action} {data} succeeds", value)
        return value

    async def invalid(self, action, data):
        kind, value = await self.call("ticker", action, data)
        check(kind == "error" and value.get("code") == "invalid", f"ticker/{action} {data} is refused with code invalid", value)

    async def close(self):
        await self.ws.close()
        if self.reader:
            await self.reader


async def main(urls, want_workers, seconds):
    clients = []
    try:
        await run(urls, want_workers, seconds, clients)
    finally:
        for c in clients:
            await c.close()


async def run(urls, want_workers, seconds, clients):
    step = lambda text: print("ok  ", text)
    workers = defaultdict(list)
    while len(workers) < want_workers or len(clients) < len(SYMBOL_SETS):
        check(len(clients) < 40, f"{want_workers} workers hold clients after 40 connections (saw {len(workers)})")
        c = await Client.connect(urls[len(clients) % len(urls)])
        clients.append(c)
        me = await c.ok("whoami")
        check(me["clientId"] == c.client_id, "whoami names this client", me)
        c.worker = me["workerId"]
        workers[c.worker].append(c)
    step(f"{len(clients)} clients on {len(workers)} worker(s): " + ", ".join(f"{w} x{len(cs)}" for w, cs in workers.items()))

    known = (await clients[0].ok("symbols"))["symbols"]
    check(isinstance(known, list) and "AAPL" in known and len(known) >= 5, "symbols lists the known symbols", known)
    c0 = clients[0]
    await c0.invalid("subscribe", {"symbols": ["NOPE"]})
    await c0.invalid("subscribe", {"symbols": []})
    await c0.invalid("subscribe", {"symbols": "AAPL"})
    await c0.invalid("subscribe", {"symbols": [42]})
    await c0.invalid("subscribe", None)
    await c0.invalid("unsubscribe", {"symbols": ["AAPL", "NOPE"]})
    subs = (await c0.ok("subscriptions"))["symbols"]
    check(subs in ([], {}), "a refused subscribe subscribed to nothing", subs)
    step("symbols; subscribe/unsubscribe validate (code invalid) and refuse all-or-nothing")

    # Each client subscribes to a set; the last one uses system/joinRoom instead.
    wanted = {}
    for i, c in enumerate(clients):
        syms = SYMBOL_SETS[i % len(SYMBOL_SETS)]
        if i == len(clients) - 1 and i > 0:
            r = await c.ok("joinRoom", {"roomName": "price:TSLA"}, type_="system")
            check(r.get("success") is True, "system/joinRoom price:TSLA works", r)
            wanted[c] = {"TSLA"}
            continue
        r = await c.ok("subscribe", {"symbols": syms})
        up = sorted({s.upper() for s in syms})
        check(sorted(r["subscribed"]) == up, "subscribe replies with the upper-cased symbols", r)
        check(isinstance(r.get("prices"), dict), "subscribe replies with a prices snapshot", r)
        wanted[c] = set(up)
    subs = (await clients[1].ok("subscriptions"))["symbols"]
    check(sorted(subs) == sorted(wanted[clients[1]]), "subscriptions lists what the client subscribed to", subs)
    step("every client subscribed (one through system/joinRoom)")

    for c in clients:
        c.prices.clear()
    start = time.monotonic()
    await asyncio.sleep(seconds)
    stop = time.monotonic()

    total = 0
    for i, c in enumerate(clients):
        got = [d for t, d in c.prices if t <= stop]
        total += len(got)
        syms = {d["symbol"] for d in got}
        check(syms <= wanted[c], f"client {i} ({c.worker}) gets only its symbols {sorted(wanted[c])}, got {sorted(syms)}")
        check(syms == wanted[c], f"client {i} gets every symbol it wants {sorted(wanted[c])}, got {sorted(syms)}")
        for s in wanted[c]:
            ats = [d["at"] for d in got if d["symbol"] == s]
            check(len(ats) == len(set(ats)), f"client {i}: no duplicate {s} prices (one publisher)", ats)
            check(ats == sorted(ats), f"client {i}: {s} prices arrive in order", ats)
            rate = len(ats) / (stop - start)
            check(1.6 <= rate <= 2.4, f"client {i}: about 2 {s} prices per second, got {rate:.2f}/s")
        for d in got:
            check(isinstance(d["price"], (int, float)) and d["price"] > 0 and isinstance(d["change"], (int, float))
                  and isinstance(d["at"], (int, float)) and d["at"] > 1e12, "price data has {symbol, price, change, at}", d)
    # the same tick reaches every subscriber of a symbol, on every worker, with the same data
    seen = defaultdict(set)
    for c in clients:
        for _, d in c.prices:
            seen[(d["symbol"], d["at"])].add((d["price"], d["change"]))
    check(all(len(v) == 1 for v in seen.values()), "every subscriber of a symbol sees the same price per tick")
    step(f"{total} prices in {stop - start:.1f} s across {len(clients)} clients: own symbols only, ~2/s per symbol, no duplicates")

    c = clients[2] if len(clients) > 2 else clients[0]
    drop = sorted(wanted[c])[0]
    r = await c.ok("unsubscribe", {"symbols": [drop]})
    check(r["unsubscribed"] == [drop], "unsubscribe replies with the symbols", r)
    await asyncio.sleep(0.2)  # a price already on its way may still arrive
    c.prices.clear()
    await asyncio.sleep(1.5)
    syms = {d["symbol"] for _, d in c.prices}
    check(drop not in syms and syms == wanted[c] - {drop}, f"after unsubscribe {drop} stops, the others go on: {sorted(syms)}")
    step(f"unsubscribe {drop} stops exactly that symbol")
    print("all checks passed")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("urls", nargs="*", default=["ws://127.0.0.1:8080/ws"])
    ap.add_argument("--workers", type=int, default=1, help="distinct workers that must hold clients")
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    try:
        asyncio.run(main(a.urls, a.workers, a.seconds))
    except Fail as e:
        print("FAIL", e)
        raise SystemExit(1)
    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
        print(f"FAIL {type(e).__name__}: {e}")
        raise SystemExit(1)
