#!/usr/bin/env bash
# cpu_per_msg.sh: what the moonwire worker spends per echoed message, figures that a busy machine
# distorts far less than msg/s: CPU time (utime+stime from /proc/PID/stat) and, when `perf` is
# installed, cycles and instructions (user+kernel) per reply. Starts `moonwire serve APP` pinned
# to one CPU, runs mw_loadgen (echo scenario) pinned to another, samples the worker inside the
# measured window only (after the warm-up, ending before the run does) and divides by the replies
# in that window (the load generator's measured rate x the window). Repeats RUNS times on the
# same server and prints each run and the medians.
#
#   tests/bench/cpu_per_msg.sh [APP_DIR] [-- extra mw_loadgen options]
#   env: BUILD_DIR=build PORT=18090 RUNS=3 CONNS=100 DEPTH=10 DURATION=5 WARMUP=1
#        SERVER_CPU=0 LOADGEN_CPU=1
#        LOADGEN=path (a load generator that also accepts raw echo replies, for a raw-mode app)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
APP=${1:-$ROOT/tests/bench/app}
shift || true
[[ ${1:-} == -- ]] && shift
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
PORT=${PORT:-18090}
RUNS=${RUNS:-3}
CONNS=${CONNS:-100}
DEPTH=${DEPTH:-10}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
TICKS=$(getconf CLK_TCK)

MOONWIRE=$BUILD_DIR/moonwire
LOADGEN=${LOADGEN:-$BUILD_DIR/tests/bench/mw_loadgen}
[[ -x $MOONWIRE && -x $LOADGEN ]] || { echo "cpu_per_msg.sh: build $MOONWIRE and $LOADGEN first" >&2; exit 1; }
(( DURATION >= 3 )) || { echo "cpu_per_msg.sh: DURATION must be at least 3 s" >&2; exit 2; }
PERF=$(command -v perf || true)
TMP=$(mktemp -d)

SERVER=
cleanup() {
  [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$TMP"
  true
}
trap cleanup EXIT

if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
  echo "cpu_per_msg.sh: something already serves port $PORT: choose another with PORT=" >&2
  exit 1
fi
taskset -c "$SERVER_CPU" "$MOONWIRE" serve "$APP" --host 127.0.0.1 --port "$PORT" --log-level warn &
SERVER=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
WORKER=$(pgrep -P "$SERVER" | head -1)
[[ -n $WORKER ]] || { echo "cpu_per_msg.sh: no worker process under $SERVER" >&2; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# the sampled window: from 0.5 s after the warm-up ends to 0.5 s before the run does
WINDOW=$((DURATION - 1))
us_list=() cyc_list=() ins_list=()
for run in $(seq "$RUNS"); do
  taskset -c "$LOADGEN_CPU" "$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" -c "$CONNS" -d "$DURATION" \
    --warmup "$WARMUP" --scenario echo --depth "$DEPTH" --json "$@" >"$TMP/lg" &
  lg=$!
  sleep "$WARMUP.5"
  before=$(cpu_ticks "$WORKER")
  if [[ -n $PERF ]]; then
    "$PERF" stat -x, -e cycles,instructions -p "$WORKER" -o "$TMP/perf" -- sleep "$WINDOW" 2>/dev/null
  else
    sleep "$WINDOW"
  fi
  after=$(cpu_ticks "$WORKER")
  wait "$lg"
  line=$(grep '^{' "$TMP/lg" | tail -1)
  cycles=$(awk -F, '$3 == "cycles" || $3 ~ /^cycles/ { print $1 }' "$TMP/perf" 2>/dev/null | head -1)
  instr=$(awk -F, '$3 ~ /^instructions/ { print $1 }' "$TMP/perf" 2>/dev/null | head -1)
  read -r us cyc ins rate p99 < <(node -e '
    const r = JSON.parse(process.argv[1]);
    const [ticks, hz, win] = process.argv.slice(2, 5).map(Number);
    const [cyc, ins] = process.argv.slice(5).map((s) => (s && /^[0-9]+$/.test(s) ? Number(s) : NaN));
    const replies = r.msgs_per_s * win;
    const f = (x) => (Number.isFinite(x) ? x.toFixed(0) : "-");
    console.log((ticks / hz / replies * 1e6).toFixed(3), f(cyc / replies), f(ins / replies),
                Math.round(r.msgs_per_s), r.p99_ms.toFixed(2));
  ' "$line" "$((after - before))" "$TICKS" "$WINDOW" "${cycles:-}" "${instr:-}")
  echo "run $run: $us us/msg  $cyc cycles/msg  $ins instructions/msg  ($rate msg/s, p99 $p99 ms)"
  us_list+=("$us") cyc_list+=("$cyc") ins_list+=("$ins")
done
med() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "median: $(med "${us_list[@]}") us/msg  $(med "${cyc_list[@]}") cycles/msg  $(med "${ins_list[@]}") instructions/msg"
