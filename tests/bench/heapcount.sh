#!/usr/bin/env bash
# heapcount.sh: where each heap byte of an idle connection goes (issue 15). Builds the
# LD_PRELOAD malloc counter tests/bench/mw_heapcount.c, serves APP (default tests/bench/raw_app)
# with one worker under it, takes a table of live heap bytes per allocation site, opens N idle
# connections with mw_loadgen, takes another, and prints the difference per connection by site
# (moonwire's own sites named with addr2line). Lua's memory is LuaJIT's own mmap'ed arena, not
# malloc: see tests/bench/idle.sh for RSS, which includes it.
#
#   tests/bench/heapcount.sh [APP_DIR]        env: BUILD_DIR=build N=10000 PORT=18495
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
APP=${1:-tests/bench/raw_app}
BUILD_DIR=${BUILD_DIR:-build}
N=${N:-10000}
PORT=${PORT:-18495}
MOONWIRE=$BUILD_DIR/moonwire
LOADGEN=$BUILD_DIR/tests/bench/mw_loadgen
[[ -x $MOONWIRE && -x $LOADGEN ]] || { echo "heapcount.sh: build $MOONWIRE and $LOADGEN first" >&2; exit 1; }
TMP=$(mktemp -d)
SO=$TMP/mw_heapcount.so
cc -O2 -shared -fPIC -o "$SO" tests/bench/mw_heapcount.c -ldl
SERVER=
LG=
cleanup() {
  [[ -n $LG ]] && kill "$LG" 2>/dev/null
  [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
MW_HEAPCOUNT_DIR=$TMP LD_PRELOAD=$SO MOONWIRE_LOG_LEVEL=warn "$MOONWIRE" serve "$APP" --host 127.0.0.1 \
  --port "$PORT" >"$TMP/server.log" 2>&1 &
SERVER=$!
for ((i = 0; i < 100; i++)); do
  curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
  sleep 0.1
done
WORKER=$(pgrep -P "$SERVER" | head -1)
[[ -n $WORKER ]] || { echo "heapcount.sh: no worker" >&2; cat "$TMP/server.log" >&2; exit 1; }
dump() { # NAME: the worker's table into $TMP/NAME
  rm -f "$TMP/heapcount.$WORKER.txt"
  kill -USR2 "$WORKER"
  for ((i = 0; i < 50; i++)); do [[ -s $TMP/heapcount.$WORKER.txt ]] && break; sleep 0.1; done
  sleep 0.2
  mv "$TMP/heapcount.$WORKER.txt" "$TMP/$1"
}
dump before
"$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" -c "$N" -d 30 --warmup 0 --scenario idle >"$TMP/lg.txt" 2>&1 &
LG=$!
for ((i = 0; i < 300; i++)); do
  n=$(curl -fsS --max-time 2 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
    awk '/^moonwire_connections\{/ { s += $2 } END { printf "%d", s }')
  ((n >= N)) && break
  sleep 0.1
done
sleep 1
dump after
echo "live heap bytes per idle connection by allocation site ($N connections, $APP, one worker;"
echo "sizes as malloc_usable_size gives them; glibc adds 8 bytes per block)"
python3 - "$TMP/before" "$TMP/after" "$N" "$MOONWIRE" <<'PY'
import subprocess, sys
def load(p):
    d = {}
    for line in open(p).read().splitlines()[1:]:
        b, c, obj, off, name = line.split(' ', 4)
        d[(obj, off, name)] = (int(b), int(c))
    return d
a, b, n, exe = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = []
for k, v in b.items():
    o = a.get(k, (0, 0))
    if abs(v[0] - o[0]) >= n // 2:
        rows.append((v[0] - o[0], v[1] - o[1], k))
rows.sort(reverse=True)
total = 0
for db, dc, (obj, off, name) in rows:
    where = name
    if obj == exe.split('/')[-1]:
        try:
            where = subprocess.run(['addr2line', '-f', '-s', '-e', exe, off], capture_output=True,
                                   text=True).stdout.split('\n')[0] or name
        except OSError:
            pass
    total += db
    print(f"  {db / n:8.1f} B  {dc / n:5.2f} blocks  {obj}: {where}")
print(f"  {total / n:8.1f} B  in all")
PY
