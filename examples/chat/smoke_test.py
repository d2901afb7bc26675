#!/usr/bin/env python3
"""examples/chat/smoke_test.py: drives a running chat server with a few clients and checks the
protocol end to end: nicknames, system/joinRoom into history rooms, presence and join/leave
events, send, the stored history, recovery of what a client missed while it was away, the
vip room gated by a token claim, error frames, and a room report computed by a background job.

    build/moonwire serve examples/chat --port 8080       # in one terminal
    python3 examples/chat/smoke_test.py [ws://127.0.0.1:8080/ws]

Needs the `websockets` module (Debian: python3-websockets). Signs its tokens with $CHAT_SECRET
or app.lua's development secret, as the server does. Exit status 0 when every check passed;
the first failure is printed with the frames involved.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time

import websockets

TIMEOUT = 5  # seconds per frame (the report job takes about 1 s)
DEV_SECRET = "chat-example-dev-secret-change-me-0123456789"  # the same as in app.lua


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
    async def connect(cls, name, url, token=None):
        ws = await websockets.connect(url + ("?token=" + token if token else ""), open_timeout=TIMEOUT)
        self = cls(name, ws)
        hello = await self.recv()
        check(hello.get("type") == "system" and hello.get("action") == "connected",
              name + ": first frame is system/connected", hello)
        self.client_id = hello["data"]["clientId"]
        return self

    async def recv(self):
        return json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def call(self, action, data=None, type="chat"):
        """Sends <type>/<action>; returns ("ok", response) or ("error", data of the error frame)."""
        rid = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({"type": type, "action": action, "data": data or {}, "requestId": rid}))
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

    async def system(self, action, data):
        """system/<action> (joinRoom, presence): the response, {success, ...}."""
        kind, value = await self.call(action, data, "system")
        check(kind == "ok", f"{self.name}: system/{action} {data} is answered", value)
        return value

    async def push(self, action, pred=lambda d: True, type="chat"):
        """The next <type>/<action> push whose data satisfies pred (earlier frames are skipped)."""
        return (await self.frame(action, pred, type))["data"]

    async def frame(self, action, pred=lambda d: True, type="chat"):
        """The whole frame of the next such push."""
        while True:
            while self.pushes:
                f = self.pushes.pop(0)
                if f.get("type") == type and f.get("action") == action and pred(f.get("data") or {}):
                    return f
            try:
                self.pushes.append(await self.recv())
            except asyncio.TimeoutError:
                raise Fail(f"{self.name}: no {type}/{action} push matching the check within {TIMEOUT} s")

    def got(self, text):
        """True when a chat/message with this text is among the frames seen so far."""
        return any(f.get("action") == "message" and (f.get("data") or {}).get("text") == text for f in self.pushes)


def make_token(user, vip=False):
    """An HS256 JWT as examples/chat/make_token.py makes it (here without PyJWT)."""
    claims = {"sub": user, "exp": int(time.time()) + 600}
    if vip:
        claims["vip"] = True
    part = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
    secret = (os.environ.get("CHAT_SECRET") or DEV_SECRET).encode()
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


async def main(url):
    clients = []
    try:
        await run(url, clients)
    finally:
        for c in clients:
            await c.ws.close()


async def run(url, clients):
    room = "smoke-" + secrets.token_hex(3)

    async def connect(name, token=None):
        c = await Client.connect(name, url, token)
        clients.append(c)
        return c

    a, b = await connect("A"), await connect("B")
    step = lambda text: print("ok  ", text)

    check((await a.ok("setNickname", {"nickname": "  Ada  "}))["nickname"] == "Ada", "nickname is trimmed")
    await b.ok("setNickname", {"nickname": "Bob"})
    await a.error("setNickname", {"nickname": "   "}, "invalid")
    await a.error("setNickname", {"nickname": "x" * 33}, "invalid")
    await a.error("send", {"text": "too early"}, "not_in_room")
    await a.error("history", {}, "not_in_room")
    step("setNickname validates and trims; send/history before joining are refused")

    r = await a.system("joinRoom", {"roomName": room})
    check(r["success"] is True and r["data"]["offset"] == 0 and isinstance(r["data"]["epoch"], str),
          "A joins a history room (offset 0, an epoch)", r)
    r = await a.system("presence", {"roomName": room})
    check(r["success"] and [c["clientId"] for c in as_list(r["data"]["clients"])] == [a.client_id],
          "A is alone in the presence list", r)
    r = await b.system("joinRoom", {"roomName": room})
    check(r["success"] is True, "B joins", r)
    d = await a.push("join", lambda d: d.get("clientId") == b.client_id, "presence")
    check(d["roomName"] == room and "userId" not in d, "A gets presence/join for B (a guest: no userId)", d)
    r = await b.system("presence", {"roomName": room})
    check(r["data"]["count"] == 2 and r["data"]["users"] == 2, "presence counts both", r)
    r = await a.ok("names", {"clientIds": [a.client_id, b.client_id, "no-such-client"]})
    check(r["names"] == {a.client_id: "Ada", b.client_id: "Bob"}, "names gives the guests' nicknames", r)
    await a.error("names", {"clientIds": "everyone"}, "invalid")
    step(f"both joined #{room}; presence lists both, A got presence/join; names works")

    r = await a.ok("send", {"text": "hello from A"})
    check(isinstance(r.get("id"), int) and r.get("delivered") >= 1, "send stores the message (delivered: members on this worker)", r)
    for c in (a, b):
        f = await c.frame("message", lambda d: d.get("text") == "hello from A")
        m = f["data"]
        check(m["id"] == r["id"] and m["room"] == room and m["nickname"] == "Ada" and m["clientId"] == a.client_id
              and isinstance(m["at"], (int, float)) and m["at"] > 1e12, f"{c.name} got A's message", f)
        check(f["room"] == room and f["offset"] == 1, "the frame carries the room's offset", f)
    await b.error("send", {"text": "   "}, "invalid")
    await b.error("send", {"text": "y" * 1001}, "invalid")
    await b.ok("send", {"text": "é" * 1000})  # characters, not bytes
    await a.push("message", lambda d: d.get("nickname") == "Bob")
    step("send broadcasts {id, room, clientId, nickname, text, at} with an offset; text limits hold")

    await b.ok("setNickname", {"nickname": "Bobby"})
    d = await a.push("renamed", lambda d: d.get("clientId") == b.client_id)
    check(d["nickname"] == "Bobby", "a nickname change is pushed to the room", d)
    step("setNickname tells the room (chat/renamed)")

    r = await b.system("joinRoom", {"roomName": room + "-other"})
    check(r["success"] is True, "B joins another room", r)
    await a.push("leave", lambda d: d.get("clientId") == b.client_id and d.get("roomName") == room, "presence")
    step("B switching rooms: A gets presence/leave (one room at a time)")
    await a.ok("send", {"text": "only A hears this"})
    await a.push("message", lambda d: d.get("text") == "only A hears this")
    await b.ok("history")  # a round trip: anything sent to B would have arrived by now
    check(not b.got("only A hears this"), "B no longer gets #" + room, *b.pushes)

    back = await b.system("joinRoom", {"roomName": room})
    check(back["success"] is True and back["data"]["offset"] == 4, "B comes back (3 messages and a rename: offset 4)", back)
    await a.push("join", lambda d: d.get("clientId") == b.client_id, "presence")
    r = await b.ok("history")
    history = as_list(r.get("messages"))
    texts = [m.get("text") for m in history]
    check(r["room"] == room and len(history) == 3 and texts[0] == "hello from A" and texts[-1] == "only A hears this",
          "history has the room's stored messages, oldest first", r)
    check(history[0]["nickname"] == "Ada" and history[0]["room"] == room and history[0]["at"] > 1e12
          and history[0]["id"] < history[-1]["id"], "history entries have the message push's shape", history[0])
    step("history: the room's stored messages, with their ids")

    # Recovery: B goes away, A says something, B comes back (a new connection) with `since`.
    since = {"offset": back["data"]["offset"], "epoch": back["data"]["epoch"]}  # what B has seen
    await b.ws.close()
    clients.remove(b)
    await a.push("leave", lambda d: d.get("clientId") == b.client_id, "presence")
    await a.ok("send", {"text": "while B was away"})
    b2 = await connect("B2")
    await b2.ws.send(json.dumps({"type": "system", "action": "joinRoom", "requestId": "rejoin",
                                 "data": {"roomName": room, "since": since}}))
    replayed = []
    while True:
        f = await b2.recv()
        if f.get("requestId") == "rejoin":
            break
        if f.get("action") == "message":
            replayed.append(f)
    check(f["response"]["success"] is True and f["response"]["data"]["recovered"] is True,
          "the rejoin with since recovers", f)
    check([m["data"]["text"] for m in replayed] == ["while B was away"] and replayed[0]["offset"] == since["offset"] + 1,
          "exactly the missed message is replayed, before the reply", *replayed)
    await a.push("join", lambda d: d.get("clientId") == b2.client_id, "presence")
    step("a client that was away rejoins with since: the missed message comes once, then recovered: true")

    reason = "VIP rooms need a token with the vip claim"
    r = await a.system("joinRoom", {"roomName": "vip:lounge"})
    check(r == {"success": False, "error": reason}, "a guest is refused from vip:lounge with the reason", r)
    plain = await connect("P", make_token("pat"))
    r = await plain.system("joinRoom", {"roomName": "vip:lounge"})
    check(r == {"success": False, "error": reason}, "a token without the vip claim is refused too", r)
    await plain.error("setNickname", {"nickname": "Pat"}, "invalid")
    vip = await connect("V", make_token("vera", vip=True))
    r = await vip.system("joinRoom", {"roomName": "vip:lounge"})
    check(r["success"] is True, "a token with vip = true enters vip:lounge", r)
    r = await vip.system("presence", {"roomName": "vip:lounge"})
    check([c.get("userId") for c in as_list(r["data"]["clients"])] == ["vera"], "presence shows the userId", r)
    r = await vip.ok("send", {"text": "VIPs only"})
    m = await vip.push("message", lambda d: d.get("text") == "VIPs only")
    check(m["nickname"] == "vera" and m["room"] == "vip:lounge", "a signed-in user is named by its userId", m)
    await a.ok("send", {"text": "A is still in its room"})
    await a.push("message", lambda d: d.get("text") == "A is still in its room")
    step("vip:* rooms: refused without the claim (A stays in its room), allowed with it")

    r = await a.ok("report")
    job = r.get("jobId")
    check(isinstance(job, str) and len(job) >= 16, "report returns a jobId", r)
    while True:
        f = await a.recv()
        if f.get("type") == "queue" and (f.get("data") or {}).get("jobId") == job:
            break
    check(f["action"] == "completed" and f["data"]["queue"] == "report", "the report job completes", f)
    rep = f["data"]["result"]
    check(rep["room"] == room and rep["messages"] == 5 and rep["topPosters"][0]["nickname"] == "Ada",
          "the report counts the room's messages", rep)
    step("report: computed by jobs/report.lua and pushed to the asking client")

    await b2.ws.close()
    clients.remove(b2)
    await a.push("leave", lambda d: d.get("clientId") == b2.client_id, "presence")
    step("B disconnecting: A gets presence/leave")
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
