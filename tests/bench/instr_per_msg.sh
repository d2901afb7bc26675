#!/usr/bin/env bash
# instr_per_msg.sh: user-space instructions the moonwire worker executes per echoed message,
# counted by valgrind's callgrind: exact and repeatable even on a machine busy with other work
# (CPU time is not, and virtual machines often have no hardware counters for `perf stat`). The
# kernel's share (system calls, TCP) is not counted: tests/bench/cpu_per_msg.sh measures it all.
#
# Serves APP twice under callgrind, each time with the same connections and a short (SHORT s)
# then a long (LONG s) echo load, and divides the difference of the worker's instructions by the
# difference of the messages it received (its /metrics counter): start-up and connecting cancel
# out. Leaves the long run's profile for callgrind_annotate.
#
#   tests/bench/instr_per_msg.sh [APP_DIR] [OUT_DIR]
#   env: BUILD_DIR=build CONNS=20 DEPTH=10 SHORT=3 LONG=10
#        LOADGEN=path (a load generator that also accepts raw echo replies, for a raw-mode app)
#        LOADGEN_ARGS="..." more mw_loadgen options, after the defaults (e.g. "--scenario broadcast
#        --rate 200": then the figure is instructions per broadcast, fan-out to CONNS included)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
APP=${1:-$ROOT/tests/bench/app}
OUT=${2:-$(mktemp -d)}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
CONNS=${CONNS:-20}
DEPTH=${DEPTH:-10}
SHORT=${SHORT:-3}
LONG=${LONG:-10}
MOONWIRE=$BUILD_DIR/moonwire
LOADGEN=${LOADGEN:-$BUILD_DIR/tests/bench/mw_loadgen}
[[ -x $MOONWIRE && -x $LOADGEN ]] || { echo "instr_per_msg.sh: build $MOONWIRE and $LOADGEN first" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "instr_per_msg.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
mkdir -p "$OUT"

SERVER=
cleanup() { [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; true; }
trap cleanup EXIT

# one SECONDS TAG: serves, loads, stops; prints "messages instructions profile"
one() {
  local port=$((28000 + RANDOM % 4000))
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$2.%p" \
    "$MOONWIRE" serve "$APP" --host 127.0.0.1 --port "$port" --log-level warn 2>"$OUT/valgrind.$2.log" &
  SERVER=$!
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.2
  done
  local worker
  worker=$(pgrep -P "$SERVER" | head -1)
  "$LOADGEN" --url "ws://127.0.0.1:$port/ws" -c "$CONNS" -d "$1" --warmup 1 --scenario echo --depth "$DEPTH" \
    ${LOADGEN_ARGS:-} >"$OUT/loadgen.$2.txt" 2>&1
  local msgs
  msgs=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^moonwire_messages_received_total/ { print $2 }')
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  local profile=$OUT/callgrind.$2.$worker
  echo "$msgs $(awk '/^summary:/ { print $2 }' "$profile") $profile"
}

read -r m1 i1 _ < <(one "$SHORT" short)
read -r m2 i2 profile < <(one "$LONG" long)
(( m2 > m1 )) || { echo "instr_per_msg.sh: the long run received no more messages than the short one" >&2; exit 1; }
echo "short run: $m1 messages, $i1 instructions; long run: $m2 messages, $i2 instructions"
echo "instructions per message: $(( (i2 - i1) / (m2 - m1) ))"
echo "profile of the long run: callgrind_annotate $profile"
