#!/usr/bin/env python3
"""examples/chat/make_token.py: signs a token (an HS256 JWT) for trying the chat as a signed-in
user, and prints the page's URL with it:

    python3 examples/chat/make_token.py alice --vip       # may enter rooms vip:*
    python3 examples/chat/make_token.py bob               # signed in, no vip claim

Open the printed http://localhost:8080/?token=... URL: the page passes the token to connect(),
the server checks it, and the member list shows the user's id. It is signed with $CHAT_SECRET,
or with the development secret of app.lua when that is not set (the server must use the same
one). In production a login service issues the tokens; this script only stands in for it.
(Not called token.py: a script of that name would hide Python's own `token` module.)

Needs PyJWT (Debian: python3-jwt).
"""
import argparse
import os
import sys
import time

try:
    import jwt
except ImportError:
    sys.exit("make_token.py needs PyJWT: sudo apt-get install python3-jwt (Debian), or pip install pyjwt")

DEV_SECRET = "chat-example-dev-secret-change-me-0123456789"  # the same as in app.lua


def make_token(user, vip=False, ttl=86400, secret=None):
    """The token: sub = user, exp = now + ttl seconds, and vip = true when asked for."""
    claims = {"sub": user, "exp": int(time.time()) + ttl}
    if vip:
        claims["vip"] = True
    return jwt.encode(claims, secret or os.environ.get("CHAT_SECRET") or DEV_SECRET, algorithm="HS256")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("user", help="the userId the page is signed in as (the token's sub)")
    ap.add_argument("--vip", action="store_true", help="add the claim vip = true (rooms vip:* need it)")
    ap.add_argument("--ttl", type=int, default=86400, help="seconds until the token expires (default: a day)")
    ap.add_argument("--url", default="http://localhost:8080/", help="the chat page (default: %(default)s)")
    args = ap.parse_args()
    if args.ttl <= 0:
        ap.error("--ttl must be positive")
    print(args.url + "?token=" + make_token(args.user, args.vip, args.ttl))


if __name__ == "__main__":
    sys.exit(main())
