#!/usr/bin/env python3
"""examples/chat/smoke_test.py: drives a running chat server with two clients and checks the
protocol end to end (nicknames, join, members, send, leave, disconnect, error frames, the
stored history shown on join, and a room report computed by a background job).

    build/moonwire serve examples/chat --port 8080       # in one terminal
    python3 examples/chat/smoke_test.py [ws://127.0.0.1:8080/ws]

Needs the `websockets` module (Debian: python3-websockets). Exit status 0 when every check
passed; the first failure is printed with the frames involved.
"""
import asyncio
import json
import secrets
import sys

import websockets

TIMEOUT = 5  # seconds per frame (the report job takes about 1 s)


class Fail(Exception):
    pass


def check(cond, what, *frames):
    if not cond:
        raise Fail(what + "".join("\n    " + json.dumps(f) for f in frames))


def as_list(v):
    # an empty list may arrive as {} (the server's JSON encoder has no empty-array marker)
    return v if isinstance(v, list) else []


class Client:
    def __init__(self, name, ws):
        self.name, self.ws = name, ws
        self.next_id = 1
        self.pushes = []  # frames without a requestId, oldest first

    @classmethod
    async def connect(cls, name, url):
        ws = await websockets.connect(url, open_timeout=TIMEOUT)
        self = cls(name, ws)
        hello = await self.recv()
        check(hello.get("type") == "system" and hello.get("action") == "connected",
              name + ": first frame is system/connected", hello)
        self.client_id = hello["data"]["clientId"]
        return self

    async def recv(self):
        return json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def call(self, action, data=None):
        """Sends chat/<action>; returns ("ok", response) or ("error", data of the error frame)."""
        rid = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({"type": "chat", "action": action, "data": data or {}, "requestId": rid}))
        while True:
            f = await self.recv()
            if f.get("requestId") == rid:
                return "ok", f.get("response")
            if f.get("type") == "error" and f.get("data", {}).get("requestId") == rid:
                return "error", f["data"]
            self.pushes.append(f)

    async def ok(self, action, data=None):
        kind, value = await self.call(action, data)
        check(kind == "ok", f"{self.name}: chat/{action} {data} succeeds", value)
        return value

    async def error(self, action, data, code):
        kind, value = await self.call(action, data)
        check(kind == "error" and value.get("code") == code,
              f"{self.name}: chat/{action} {data} is refused with code {code}", value)
        return value

    async def push(self, action, pred=lambda d: True):
        """The next chat/<action> push whose data satisfies pred (earlier frames are skipped)."""
        while True:
            while self.pushes:
                f = self.pushes.pop(0)
                if f.get("type") == "chat" and f.get("action") == action and pred(f.get("data") or {}):
                    return f["data"]
            try:
                self.pushes.append(await self.recv())
            except asyncio.TimeoutError:
                raise Fail(f"{self.name}: no chat/{action} push matching the check within {TIMEOUT} s")


def nicks(members):
    return sorted(m["nickname"] for m in as_list(members))


async def main(url):
    clients = []
    try:
        await run(url, clients)
    finally:
        for c in clients:
            await c.ws.close()


async def run(url, clients):
    room = "smoke-" + secrets.token_hex(3)
    a = await Client.connect("A", url)
    clients.append(a)
    b = await Client.connect("B", url)
    clients.append(b)
    step = lambda text: print("ok  ", text)

    check((await a.ok("setNickname", {"nickname": "  Ada  "}))["nickname"] == "Ada", "nickname is trimmed")
    await b.ok("setNickname", {"nickname": "Bob"})
    await a.error("setNickname", {"nickname": "   "}, "invalid")
    await a.error("setNickname", {"nickname": "x" * 33}, "invalid")
    await a.error("send", {"text": "too early"}, "not_in_room")
    await a.error("members", {}, "not_in_room")
    step("setNickname validates and trims; send/members before join are refused")

    r = await a.ok("join", {"room": room})
    check(r["room"] == room and nicks(r["members"]) == ["Ada"], "A joins alone", r)
    r = await b.ok("join", {"room": room})
    check(nicks(r["members"]) == ["Ada", "Bob"], "B's join reply lists both", r)
    d = await a.push("members", lambda d: d.get("room") == room and len(as_list(d.get("members"))) == 2)
    check(nicks(d["members"]) == ["Ada", "Bob"], "A is told B joined", d)
    step(f"both joined #{room}; A got the members push")

    r = await a.ok("send", {"text": "hello from A"})
    check(r.get("delivered") == 2, "send reaches both members", r)
    for c in (a, b):
        m = await c.push("message", lambda d: d.get("text") == "hello from A")
        check(m["room"] == room and m["nickname"] == "Ada" and m["clientId"] == a.client_id
              and isinstance(m["at"], (int, float)) and m["at"] > 1e12, f"{c.name} got A's message", m)
    await b.error("send", {"text": "   "}, "invalid")
    await b.error("send", {"text": "y" * 1001}, "invalid")
    await b.ok("send", {"text": "é" * 1000})  # characters, not bytes
    await a.push("message", lambda d: d.get("nickname") == "Bob")
    step("send broadcasts {room, clientId, nickname, text, at} to both; text limits hold")

    r = await b.ok("members")
    check(r["room"] == room and nicks(r["members"]) == ["Ada", "Bob"], "members lists both", r)
    await b.ok("setNickname", {"nickname": "Bobby"})
    d = await a.push("members", lambda d: "Bobby" in nicks(d.get("members")))
    step("members works; a nickname change is pushed to the room")

    await b.ok("join", {"room": room + "-other"})
    d = await a.push("members", lambda d: d.get("room") == room and nicks(d.get("members")) == ["Ada"])
    step("B switching rooms tells A (onLeaveRoom); one room at a time")
    await a.ok("send", {"text": "only A hears this"})
    await a.push("message", lambda d: d.get("text") == "only A hears this")
    kind, _ = await b.call("members")
    check(kind == "ok", "B is in the other room")
    check(not any((f.get("data") or {}).get("text") == "only A hears this" for f in b.pushes),
          "B no longer gets #" + room, *b.pushes)

    r = await b.ok("join", {"room": room})
    history = as_list(r.get("history"))
    texts = [m.get("text") for m in history]
    check(texts[:1] == ["hello from A"] and texts[-1] == "only A hears this" and len(history) == 3,
          "B's join reply has the room's stored history, oldest first", r)
    check(history[0]["nickname"] == "Ada" and history[0]["room"] == room and history[0]["at"] > 1e12,
          "history entries have the message push's shape", history[0])
    await a.push("members", lambda d: len(as_list(d.get("members"))) == 2)
    step("joining again shows the room's stored history")

    r = await a.ok("report")
    job = r.get("jobId")
    check(isinstance(job, str) and len(job) >= 16, "report returns a jobId", r)
    while True:
        f = await a.recv()
        if f.get("type") == "queue" and (f.get("data") or {}).get("jobId") == job:
            break
    check(f["action"] == "completed" and f["data"]["queue"] == "report", "the report job completes", f)
    rep = f["data"]["result"]
    check(rep["room"] == room and rep["messages"] == 3 and rep["topPosters"][0]["nickname"] == "Ada",
          "the report counts the room's messages", rep)
    step("report: computed by jobs/report.lua and pushed to the asking client")

    await b.ws.close()
    await a.push("members", lambda d: d.get("room") == room and nicks(d.get("members")) == ["Ada"])
    step("B disconnecting tells A")
    print("all checks passed")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/ws"
    try:
        asyncio.run(main(target))
    except Fail as e:
        print("FAIL", e, file=sys.stderr)
        sys.exit(1)
    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
