#!/usr/bin/env bash
# c100k.sh: 100 000 concurrent WebSocket connections on one machine (DESIGN section 18, issue 15).
# One redis-server, one moonwire with several workers (the open-file limit is per process), and
# mw_loadgen in several processes from source addresses 127.0.0.2 and up. Prints connections/s
# during the ramp (from /metrics, once a second), the server's RSS per connection, Redis's RSS,
# and the delivery time of one broadcast (sendMessageToAll through tests/bench/app) to all of them.
set -euo pipefail

usage() {
  cat <<'EOF2'
usage: tests/bench/c100k.sh [options]

  -c, --connections N   connections (BENCH_CONNECTIONS, default 100000)
  --workers N           moonwire workers (BENCH_WORKERS, default 7: ~14 300 each under the
                        20 000 open-file limit, SO_REUSEPORT spreads them unevenly)
  --hold S              seconds the connections stay open after the ramp (default 5); the one
                        broadcast goes out at its start
  --ramp-timeout S      give up connecting after S seconds (default 300)
  --build-dir DIR       CMake build directory (BENCH_BUILD_DIR, default build)
  --no-build            use the binaries already built
  -h, --help            this text

Everything it starts (redis-server, moonwire, mw_loadgen) is stopped on exit, by pid. Bounded:
the load generator is killed after ramp-timeout + hold + 60 s.
EOF2
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CONNECTIONS=${BENCH_CONNECTIONS:-100000}
WORKERS=${BENCH_WORKERS:-7}
HOLD=5
RAMP_TIMEOUT=300
BUILD_DIR=${BENCH_BUILD_DIR:-build}
BUILD=1
BENCH_SCRIPT=c100k.sh
# shellcheck source=tests/bench/common.sh
source "$ROOT/tests/bench/common.sh"
while [[ $# -gt 0 ]]; do
  case $1 in
    -c|--connections) need_arg "$@"; CONNECTIONS=$2; shift 2 ;;
    --workers) need_arg "$@"; WORKERS=$2; shift 2 ;;
    --hold) need_arg "$@"; HOLD=$2; shift 2 ;;
    --ramp-timeout) need_arg "$@"; RAMP_TIMEOUT=$2; shift 2 ;;
    --build-dir) need_arg "$@"; BUILD_DIR=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "c100k.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in redis-server curl timeout; do
  command -v "$tool" >/dev/null || { echo "c100k.sh: $tool is needed" >&2; exit 1; }
done

OUT=$BUILD_DIR/bench-results/c100k-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
if [[ $BUILD == 1 ]]; then
  echo "== building moonwire and mw_loadgen (Release) in $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 &&
    cmake --build "$BUILD_DIR" --target moonwire mw_loadgen -j 2 >>"$OUT/cmake.log" 2>&1 ||
    { tail -30 "$OUT/cmake.log" >&2; exit 1; }
fi
MOONWIRE=$BUILD_DIR/moonwire
LOADGEN=$BUILD_DIR/tests/bench/mw_loadgen

STARTED=()
cleanup() { local pid; for pid in "${STARTED[@]}"; do stop_pid "$pid"; done; STARTED=(); }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TAKEN=" "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $TAKEN == *" $p "* ]] && continue
    port_busy "$p" && continue
    TAKEN+="$p "
    echo "$p"
    return 0
  done
  return 1
}
REDIS_PORT=$(free_port)
PORT=$(free_port)

# RSS in KiB of a process and all its descendants
rss_tree() {
  local total=0 p kids r
  local todo=("$1")
  while [[ ${#todo[@]} -gt 0 ]]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${r:-0}))
    kids=$(pgrep -P "$p" || true)
    for k in $kids; do todo+=("$k"); done
  done
  echo "$total"
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --maxclients 10000 \
  >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
STARTED+=("$REDIS_PID")
for ((i = 0; i < 50; i++)); do port_busy "$REDIS_PORT" && break; sleep 0.1; done

MOONWIRE_LOG_LEVEL=warn "$MOONWIRE" serve tests/bench/app --host 127.0.0.1 --port "$PORT" \
  --workers "$WORKERS" --redis "redis://127.0.0.1:$REDIS_PORT/0" >"$OUT/moonwire.log" 2>&1 &
MW_PID=$!
STARTED=("$MW_PID" "${STARTED[@]}") # stopped before Redis
for ((i = 0; i < 300; i++)); do
  curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$PORT/ready" 2>/dev/null && break
  kill -0 "$MW_PID" 2>/dev/null || { echo "c100k.sh: moonwire exited; log:" >&2; tail -20 "$OUT/moonwire.log" >&2; exit 1; }
  sleep 0.1
done
sleep 1
RSS0=$(rss_tree "$MW_PID")
REDIS0=$(rss_tree "$REDIS_PID")
echo "== moonwire $WORKERS workers on port $PORT (Redis on $REDIS_PORT); RSS before: moonwire $RSS0 KiB, redis $REDIS0 KiB"
echo "== mw_loadgen: $CONNECTIONS connections from 127.0.0.2+, then one broadcast to all of them"

# one broadcast, at the start of the hold: --rate low enough that the next one would come after it
RATE=$(awk -v h="$HOLD" 'BEGIN { printf "%.4f", 1 / (h + 1) }')
timeout --kill-after=5 $((RAMP_TIMEOUT + HOLD + 60)) "$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" \
  -c "$CONNECTIONS" --scenario broadcast --senders 1 --rate "$RATE" -d "$HOLD" --warmup 0 --drain 15 \
  --first-source 2 --connect-timeout "$RAMP_TIMEOUT" --concurrency 512 --payload 0 \
  --server-pid "$MW_PID" --label "c100k" --json >"$OUT/loadgen.txt" 2>&1 &
LG_PID=$!
STARTED=("$LG_PID" "${STARTED[@]}")

metric_connections() {
  curl -fsS --max-time 2 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
    awk '/^moonwire_connections\{/ { s += $2 } END { printf "%d", s }'
}
echo "   time   connections   per second   moonwire RSS"
t=0 prev=0 peak_rate=0 start_ns=$(date +%s%N) ramp_s=""
while kill -0 "$LG_PID" 2>/dev/null; do
  sleep 1
  t=$((t + 1))
  n=$(metric_connections || echo "$prev")
  [[ -n $n ]] || n=$prev
  rate=$((n - prev))
  ((rate > peak_rate)) && peak_rate=$rate
  printf '   %4d s %12d %12d %11d KiB\n' "$t" "$n" "$rate" "$(rss_tree "$MW_PID")"
  if [[ -z $ramp_s ]] && ((n >= CONNECTIONS)); then
    ramp_s=$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    RSS1=$(rss_tree "$MW_PID")
    REDIS1=$(rss_tree "$REDIS_PID")
  fi
  prev=$n
  ((n == 0 && t > RAMP_TIMEOUT)) && break
done
wait "$LG_PID" || true
echo
grep -v '^{' "$OUT/loadgen.txt" || true
json=$(grep '^{' "$OUT/loadgen.txt" | tail -1 || true)
echo
if [[ -n ${RSS1:-} ]]; then
  awk -v n="$CONNECTIONS" -v r0="$RSS0" -v r1="$RSS1" -v q0="$REDIS0" -v q1="$REDIS1" -v s="$ramp_s" -v pk="$peak_rate" 'BEGIN {
    printf "all %d connected in %s s (%.0f connections/s on average, peak %d/s)\n", n, s, n / s, pk
    printf "moonwire RSS %.1f MiB -> %.1f MiB: %.0f bytes per connection (all workers + supervisor)\n", r0 / 1024, r1 / 1024, (r1 - r0) * 1024 / n
    printf "redis RSS %.1f MiB -> %.1f MiB: %.0f bytes per connection (cluster state of each client)\n", q0 / 1024, q1 / 1024, (q1 - q0) * 1024 / n
  }'
else
  echo "the connection count never reached $CONNECTIONS (see the table above and $OUT)"
fi
if [[ -n $json ]]; then
  node -e '
    const r = JSON.parse(process.argv[1]);
    const open = r.connections;
    console.log(`one broadcast: delivered ${r.messages} times to ${open} open connections;` +
      ` the last delivery ${Number(r.max_ms).toFixed(1)} ms after it was sent (p50 ${Number(r.p50_ms).toFixed(1)} ms, p99 ${Number(r.p99_ms).toFixed(1)} ms)`);
  ' "$json" 2>/dev/null || echo "$json"
fi
echo "logs: $OUT"
