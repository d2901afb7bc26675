#!/usr/bin/python3
# Writes the seed corpus of the fuzz harnesses (tests/fuzz/corpus/{http,ws,jwt}) in each
# harness's input format (described at the top of fuzz_*.c); tokens are signed with the
# test keys in fuzz_keys.h. Re-run after changing an input format; crash reproducers added
# as regression seeds are kept (only the seed-* files are rewritten).
import os
import re
import struct

import jwt  # python3-jwt

here = os.path.dirname(os.path.abspath(__file__))


def write(kind, name, data):
    d = os.path.join(here, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def upgrade(target="/ws?token=abc", extra="", version="13"):
    return ("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: %s\r\n%s\r\n" % (target, version, extra)).encode()


def frame(opcode, payload, fin=True, mask=True):
    key = b"\x12\x34\x56\x78"
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def feed(data, flush=True):  # one fuzz_ws "feed" operation per <=255 bytes
    out = b""
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += bytes([3 if flush else 0, len(part)]) + part
    return out


# --- fuzz_http: limit byte, chunk byte, request
write("http", "token-query", b"\x00\x00" + upgrade())
write("http", "bearer-chunked", b"\x00\x07" + upgrade("/ws", "Authorization: Bearer  eyJhbGciOiJIUzI1NiJ9.e30.sig \r\n"))
write("http", "pipelined-frame", b"\x00\x00" + upgrade() + frame(1, b'{"type":"system","action":"ping"}'))
write("http", "version-426", b"\x00\x05" + upgrade(version="8"))
write("http", "health", b"\x00\x00GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
write("http", "percent-token", b"\x02\x03" + upgrade("/ws?a=1&token=%41b%2Bc+d&token=zz"))
write("http", "head-too-large", b"\x01\x10" + upgrade("/ws", "X-Pad: " + "p" * 100 + "\r\n"))

# --- fuzz_ws: limits byte, then operations
ping_app = b'{"type":"system","action":"ping"}'
write("ws", "text", b"\x00" + feed(frame(1, ping_app)))
write("ws", "fragments-ping", b"\x00" + feed(frame(1, b"hel", fin=False) + frame(0, b"lo ", fin=False)
                                            + frame(9, b"p") + frame(0, b"you")))
write("ws", "close-1000", b"\x00" + feed(frame(8, b"\x03\xe8bye")))
write("ws", "close-empty", b"\x00" + feed(frame(8, b"")))
write("ws", "binary-raw", b"\x10" + feed(frame(2, b"\x00\x01\xff")))
write("ws", "server-sends", b"\x00" + bytes([4, 5]) + b"hello" + bytes([0x0c, 3]) + b"\x00\x01\x02"
      + bytes([6, 7]) + bytes([5 | (2 << 3), 4]) + b"bye!" + bytes([7]) + feed(frame(8, b"\x03\xe9")))
write("ws", "too-big", b"\x01" + feed(frame(1, b"x" * 40)))
write("ws", "too-many-fragments", b"\x04" + feed(frame(1, b"a", fin=False) + frame(0, b"b", fin=False) + frame(0, b"c")))
write("ws", "refused-write", b"\x00" + feed(frame(9, b"p"), flush=False) + bytes([0x87]))

# --- fuzz_ws with permessage-deflate (limits byte bit 6; bit 5: pooled contexts): RSV1 frames, compressed replies
import zlib


def deflated(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def rsv1_frame(opcode, payload, fin=True):
    f = bytearray(frame(opcode, payload, fin))
    f[0] |= 0x40
    return bytes(f)


long_text = b'{"type":"chat","action":"say","data":"' + b"hello " * 40 + b'"}'
write("ws", "deflate-text", b"\x40" + feed(rsv1_frame(1, deflated(long_text))))
z = deflated(long_text)
write("ws", "deflate-fragments", b"\x60" + feed(rsv1_frame(1, z[:5], fin=False) + frame(9, b"p")
                                               + frame(0, z[5:], fin=True)))
write("ws", "deflate-bomb", b"\x43" + feed(rsv1_frame(2, deflated(b"\x00" * 100000))))
write("ws", "deflate-rsv1-continuation", b"\x60" + feed(rsv1_frame(1, z[:5], fin=False) + rsv1_frame(0, z[5:])))
write("ws", "deflate-not-negotiated", b"\x00" + feed(rsv1_frame(1, z)))
write("ws", "deflate-server-sends", b"\xc0" + bytes([4, 200]) + b"abc" * 66 + b"ab" + bytes([0x1c, 10]) + b"\x00" * 10
      + feed(frame(8, b"\x03\xe9")))

# --- fuzz_pmd: Sec-WebSocket-Extensions values, one per line
for name, value in {
    "plain": "permessage-deflate",
    "browser": "permessage-deflate; client_max_window_bits",
    "bits": "permessage-deflate; server_max_window_bits=15; client_max_window_bits=10",
    "declined-then-ok": "permessage-deflate; server_max_window_bits=9, permessage-deflate; client_no_context_takeover",
    "quoted": 'permessage-deflate; client_max_window_bits="12", x; a="b,c"',
    "two-lines": "foo; bar=1\npermessage-deflate; server_no_context_takeover",
    "invalid": "permessage-deflate; server_no_context_takeover=1; foo",
}.items():
    write("pmd", name, value.encode())

# --- fuzz_jwt: control byte, then a token or claims "\n" headers
src = open(os.path.join(here, "fuzz_keys.h")).read()


def pem(name):
    body = re.search(r"%s\[\] =\n(.*?);\n" % name, src, re.S).group(1)
    return "".join(line + "\n" for line in re.findall(r'"(.*?)\\n"', body))


secret = "fuzz-secret-0123456789abcdef"
keys = {0: ("HS256", secret), 1: ("RS256", pem("fuzz_rs256_private")), 2: ("ES256", pem("fuzz_es256_private"))}
for v, (alg, key) in keys.items():
    for sub in ("alice", 42):
        tok = jwt.encode({"sub": sub, "exp": 4102444800, "iat": 1700000000}, key, algorithm=alg)
        write("jwt", "token-%s-%s" % (alg, sub), bytes([v]) + tok.encode())


def signed(v, alg, key, claims, headers="", tamper=0):
    return bytes([v | 4 | (alg << 3) | (key << 5) | (tamper << 7)]) + (claims + ("\n" + headers if headers else "")).encode()


write("jwt", "sign-HS256", signed(0, 0, 0, '{"sub":"alice","exp":4102444800}'))
write("jwt", "sign-RS256-int-sub", signed(1, 1, 0, '{"sub":12345,"exp":4102444800,"aud":["a","b"]}', '{"kid":"k1"}'))
write("jwt", "sign-ES256-real-sub", signed(2, 2, 0, '{"sub":1e16,"nbf":1}'))
write("jwt", "sign-ES256-big-sub", signed(2, 2, 0, '{"sub":9007199254740993}'))
write("jwt", "confusion-RS-as-HS", signed(1, 0, 2, '{"sub":"mallory"}'))
write("jwt", "wrong-key-tampered", signed(0, 0, 1, '{"sub":"eve"}', tamper=1))
