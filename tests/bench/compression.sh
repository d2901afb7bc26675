#!/usr/bin/env bash
# compression.sh: permessage-deflate on a broadcast, side by side in one run on this machine:
# moonwire with compression off and on (--compression), and Bun's publish with perMessageDeflate
# off and on (bun_peer.js --broadcast [--deflate]). Each server gets the same load: -c receivers
# that all offer permessage-deflate (mw_loadgen --deflate), one sender publishing about 1 KB of
# JSON records (mw_loadgen --rows) at --rate per second, for -d seconds after a warm-up.
# Printed per server: deliveries/s, delivered %, p99 latency, bytes on the wire per delivery
# (frame headers included, as read by the receivers), server CPU (% of one core, all its
# processes) and CPU microseconds per delivery; for moonwire, how many compressions the worker
# ran per broadcast (/metrics). A benchmark, not a test: the figures depend on the machine.
#
#   tests/bench/compression.sh [-c 1000] [-d 10] [-w 2] [--rate 100] [--rows 1000]
#                              [--servers "moonwire moonwire-deflate bun bun-deflate"] [--pin]
#   env: BUILD_DIR=build BENCH_BUN=path PORT=18180 (moonwire) BUN_PORT=18182
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BENCH_SCRIPT=compression.sh
# shellcheck source=tests/bench/common.sh
source "$ROOT/tests/bench/common.sh"

CONNS=1000 DURATION=10 WARMUP=2 RATE=100 ROWS=1000 PIN=0
SERVERS="moonwire moonwire-deflate bun bun-deflate"
BUILD_DIR=${BUILD_DIR:-build}
PORT=${PORT:-18180}
BUN_PORT=${BUN_PORT:-18182}
while [[ $# -gt 0 ]]; do
  case $1 in
    -c) need_arg "$@"; CONNS=$2; shift 2 ;;
    -d) need_arg "$@"; DURATION=$2; shift 2 ;;
    -w) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --rate) need_arg "$@"; RATE=$2; shift 2 ;;
    --rows) need_arg "$@"; ROWS=$2; shift 2 ;;
    --servers) need_arg "$@"; SERVERS=$2; shift 2 ;;
    --pin) PIN=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compression.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

MOONWIRE=$BUILD_DIR/moonwire
LOADGEN=$BUILD_DIR/tests/bench/mw_loadgen
[[ -x $MOONWIRE && -x $LOADGEN ]] ||
  { echo "compression.sh: build $MOONWIRE and $LOADGEN first (cmake --build $BUILD_DIR)" >&2; exit 1; }
BUN=${BENCH_BUN:-$(command -v bun || true)}
[[ -n $BUN ]] || BUN=$(ls tests/bench/node_modules/@oven/bun-linux-x64*/bin/bun 2>/dev/null | head -1 || true)
OUT=$(mktemp -d)
TASKSET_SERVER=() TASKSET_LOADGEN=()
if [[ $PIN == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  TASKSET_SERVER=(taskset -c 0) TASKSET_LOADGEN=(taskset -c "1-$(($(nproc) - 1))")
fi

SERVER=""
cleanup() { [[ -n $SERVER ]] && stop_pid "$SERVER"; SERVER=""; }
trap 'cleanup; rm -rf "$OUT"' EXIT

start() { # name -> SERVER, URL
  local name=$1 port cmd=()
  case $name in
    moonwire) port=$PORT; cmd=("$MOONWIRE" serve tests/bench/app --log-level warn) ;;
    moonwire-deflate) port=$PORT; cmd=("$MOONWIRE" serve tests/bench/app --log-level warn --compression) ;;
    bun) port=$BUN_PORT; cmd=("$BUN" tests/bench/bun_peer.js --broadcast) ;;
    bun-deflate) port=$BUN_PORT; cmd=("$BUN" tests/bench/bun_peer.js --broadcast --deflate) ;;
    *) echo "compression.sh: unknown server $name" >&2; exit 2 ;;
  esac
  port_busy "$port" && { echo "compression.sh: port $port is in use" >&2; exit 1; }
  "${TASKSET_SERVER[@]}" "${cmd[@]}" --host 127.0.0.1 --port "$port" >"$OUT/$name.log" 2>&1 &
  SERVER=$!
  URL="http://127.0.0.1:$port"
  for _ in $(seq 200); do
    curl -fsS --max-time 1 -o /dev/null "$URL/health" 2>/dev/null && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  echo "compression.sh: $name did not start; log:" >&2
  tail -20 "$OUT/$name.log" >&2
  exit 1
}

compressions() { # moonwire_compression_messages_compressed_total summed over workers, or -
  { curl -fsS --max-time 2 "$URL/metrics" 2>/dev/null || true; } |
    awk '/^moonwire_compression_messages_compressed_total\{/ { s += $2; n++ } END { print n ? s : "-" }'
}

echo "== broadcast of ~${ROWS} B JSON to $CONNS receivers (all offer permessage-deflate), $RATE/s," \
  "${DURATION} s after ${WARMUP} s; $(nproc) CPUs$([[ $PIN == 1 ]] && echo ', servers pinned to CPU 0')"
for name in $SERVERS; do
  if [[ $name == bun* && -z $BUN ]]; then
    echo "== $name: skipped (no bun: set BENCH_BUN, or run tests/bench/run.sh once to install it)"
    continue
  fi
  start "$name"
  before=$(compressions)
  "${TASKSET_LOADGEN[@]}" "$LOADGEN" --url "${URL/http/ws}/ws" -c "$CONNS" -d "$DURATION" --warmup "$WARMUP" \
    --scenario broadcast --payload 0 --rows "$ROWS" --rate "$RATE" --deflate --server-pid "$SERVER" \
    --label "$name" --json >"$OUT/$name.txt" 2>&1 || true
  after=$(compressions)
  cleanup
  grep -v '^{' "$OUT/$name.txt" | sed 's/^/   /'
  line=$(grep '^{' "$OUT/$name.txt" | tail -1 || true)
  [[ -n $line ]] && echo "${line%\}},\"compressions\":\"$before $after\"}" >>"$OUT/results.jsonl"
done
[[ -s $OUT/results.jsonl ]] || { echo "compression.sh: no results" >&2; exit 1; }
echo
node - "$OUT/results.jsonl" <<'JS'
const fs = require('fs');
const rows = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const cols = [['server', 17], ['deliveries/s', 13], ['deliv %', 8], ['p99 ms', 9], ['wire B/msg', 11],
  ['deflate conns', 14], ['srv CPU%', 9], ['us/delivery', 12], ['compressions/bcast', 19]];
const line = (cells) => cells.map((c, i) => String(c).padStart(cols[i][1])).join(' ');
console.log(line(cols.map((c) => c[0])));
for (const r of rows) {
  const [b, a] = r.compressions.split(' ');
  // the sender publishes at r.rate from the start of the warm-up to the end of the window
  const per = b !== '-' && a !== '-' ? (Number(a) - Number(b)) / (r.rate * (r.warmup_s + r.duration_s)) : null;
  const us = r.server_cpu_pct != null && r.msgs_per_s ? r.server_cpu_pct / 100 / r.msgs_per_s * 1e6 : null;
  console.log(line([r.label, r.msgs_per_s.toFixed(0), (r.delivered_ratio * 100).toFixed(1), r.p99_ms.toFixed(2),
    r.wire_bytes_per_msg.toFixed(1), `${r.deflated_connections}/${r.connections}`,
    r.server_cpu_pct == null ? '-' : r.server_cpu_pct.toFixed(0), us == null ? '-' : us.toFixed(2),
    per == null ? '-' : per.toFixed(2)]) + (r.errors ? `  errors ${r.errors}: ${r.first_error}` : ''));
}
console.log('compressions/bcast: the worker\'s compressions / the broadcasts sent (rate x (warm-up + window)):' +
  ' about 1 means compressed once per broadcast, whatever the number of receivers.');
JS
