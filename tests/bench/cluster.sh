#!/usr/bin/env bash
# cluster.sh: cross-host and cross-worker broadcast delivery for moonwire. One redis-server,
# two moonwire processes sharing it ("two hosts" on one machine), mw_loadgen senders on host A
# and receivers on host B (the Redis path) or on host A (the local path); then one moonwire
# with --workers 2 (cross-worker vs same-worker delivery). Prints msgs/s, p50/p99/max, delivered %.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: tests/bench/cluster.sh [options]

Builds moonwire and mw_loadgen (Release), starts a redis-server on a free port, and runs:

  hosts    two moonwire processes A and B on two ports, both --redis to that server.
           Senders connect to A and send {"type":"bench","action":"broadcast","data":{"t":NS}}
           at --rate; the bench controller calls sendMessageToAll, so every client on A gets
           the tick directly and host B gets it through one Redis PUBLISH.
             cross-host: N receivers on B   (A -> Redis -> B)
             local:      N receivers on A   (A -> A; A still publishes to Redis for B)
           and prints the cross-host/local ratio of p50 and p99.
  workers  one moonwire with --workers 2 (tests/bench/worker_app: clients are told their
           worker, ticks carry the sender's worker); N receivers land on either worker
           (SO_REUSEPORT), so one run gives same-worker (direct) and other-worker (Redis)
           delivery latency, and their ratio.

Latency is send -> delivery on one machine's monotonic clock. Senders are extra connections
(mw_loadgen --sender-url) and are not counted as receivers. Delivered % = deliveries /
(broadcasts sent in the window x receivers open at the end).

  -c, --connections N   receivers                        (BENCH_CONNECTIONS, default 1000)
  -d, --duration S      measured seconds per run         (BENCH_DURATION, default 5)
  -w, --warmup S        warm-up seconds per run          (BENCH_WARMUP, default 2)
  --rate R              broadcasts per second, all senders (BENCH_RATE, default 100)
  --senders N           sender connections               (BENCH_SENDERS, default 1)
  --payload BYTES       data.p size; 0 sends only data.t (BENCH_PAYLOAD, default 0)
  --scenarios LIST      "hosts workers"                  (BENCH_SCENARIOS)
  --workers N           workers in the workers scenario  (BENCH_WORKERS, default 2)
  --redis-port P        redis-server port                (BENCH_REDIS_PORT, default: a free one)
  --port-a P            host A port                      (BENCH_PORT_A, default: a free one)
  --port-b P            host B port                      (BENCH_PORT_B, default: a free one)
  --port-w P            workers scenario port            (BENCH_PORT_W, default: a free one)
  --log-level L         moonwire --log-level             (BENCH_LOG_LEVEL, default warn)
  --build-dir DIR       CMake build directory            (BENCH_BUILD_DIR, default build)
  --out DIR             logs and results.jsonl           (BENCH_OUT, default BUILD/bench-results/cluster-TIME)
  --no-build            use the binaries already built
  -h, --help            this text

Every process is started by this script and stopped on exit (SIGTERM, then SIGKILL by pid
after 10 s): moonwire first, Redis last. Everything runs on one machine, so the "hosts"
share its CPUs with Redis and the load generator: the figures show the cost of the Redis
hop (publish, Redis, subscriber, fan-out), not of a network.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CONNECTIONS=${BENCH_CONNECTIONS:-1000}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-2}
RATE=${BENCH_RATE:-100}
SENDERS=${BENCH_SENDERS:-1}
PAYLOAD=${BENCH_PAYLOAD:-0}
SCENARIOS=${BENCH_SCENARIOS:-hosts workers}
WORKERS=${BENCH_WORKERS:-2}
REDIS_PORT=${BENCH_REDIS_PORT:-}
PORT_A=${BENCH_PORT_A:-}
PORT_B=${BENCH_PORT_B:-}
PORT_W=${BENCH_PORT_W:-}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
BUILD_DIR=${BENCH_BUILD_DIR:-build}
OUT=${BENCH_OUT:-}
BUILD=1

BENCH_SCRIPT=cluster.sh
# shellcheck source=tests/bench/common.sh
source "$ROOT/tests/bench/common.sh"

while [[ $# -gt 0 ]]; do
  case $1 in
    -c|--connections) need_arg "$@"; CONNECTIONS=$2; shift 2 ;;
    -d|--duration) need_arg "$@"; DURATION=$2; shift 2 ;;
    -w|--warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --rate) need_arg "$@"; RATE=$2; shift 2 ;;
    --senders) need_arg "$@"; SENDERS=$2; shift 2 ;;
    --payload) need_arg "$@"; PAYLOAD=$2; shift 2 ;;
    --scenarios) need_arg "$@"; SCENARIOS=$2; shift 2 ;;
    --workers) need_arg "$@"; WORKERS=$2; shift 2 ;;
    --redis-port) need_arg "$@"; REDIS_PORT=$2; shift 2 ;;
    --port-a) need_arg "$@"; PORT_A=$2; shift 2 ;;
    --port-b) need_arg "$@"; PORT_B=$2; shift 2 ;;
    --port-w) need_arg "$@"; PORT_W=$2; shift 2 ;;
    --log-level) need_arg "$@"; LOG_LEVEL=$2; shift 2 ;;
    --build-dir) need_arg "$@"; BUILD_DIR=$2; shift 2 ;;
    --out) need_arg "$@"; OUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

for v in CONNECTIONS SENDERS PAYLOAD WORKERS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "cluster.sh: $v must be a whole number, got '${!v}'" >&2; exit 2; }
done
for v in REDIS_PORT PORT_A PORT_B PORT_W; do
  [[ -z ${!v} || ${!v} =~ ^[0-9]+$ ]] || { echo "cluster.sh: $v must be a port number, got '${!v}'" >&2; exit 2; }
done
for v in DURATION WARMUP RATE; do
  [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "cluster.sh: $v must be a number, got '${!v}'" >&2; exit 2; }
done
((CONNECTIONS >= 1 && SENDERS >= 1)) || { echo "cluster.sh: --connections and --senders must be >= 1" >&2; exit 2; }
((WORKERS >= 2)) || { echo "cluster.sh: --workers must be >= 2 (cross-worker needs two)" >&2; exit 2; }
for s in $SCENARIOS; do
  [[ $s == hosts || $s == workers ]] || { echo "cluster.sh: unknown scenario $s (hosts, workers)" >&2; exit 2; }
done
for tool in redis-server curl python3 timeout; do
  command -v "$tool" >/dev/null || { echo "cluster.sh: $tool is needed" >&2; exit 1; }
done

OUT=${OUT:-$BUILD_DIR/bench-results/cluster-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

# ---- processes we start, stopped on every exit path (moonwire first, Redis last) ---------
STARTED=()      # moonwire supervisors and load generators
REDIS_PID=""
cleanup() {
  local pid
  for pid in "${STARTED[@]+"${STARTED[@]}"}"; do stop_pid "$pid"; done
  STARTED=()
  if [[ -n $REDIS_PID ]]; then stop_pid "$REDIS_PID"; REDIS_PID=""; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
  local keep=() p
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

# ---- build ------------------------------------------------------------------------------
LOADGEN=$BUILD_DIR/tests/bench/mw_loadgen
MOONWIRE=$BUILD_DIR/moonwire
if [[ $BUILD == 1 ]]; then
  echo "== building moonwire mw_loadgen in $BUILD_DIR"
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake-configure.log" 2>&1 ||
      { tail -30 "$OUT/cmake-configure.log" >&2; exit 1; }
  fi
  cmake --build "$BUILD_DIR" --target moonwire mw_loadgen -j "$(nproc)" >"$OUT/cmake-build.log" 2>&1 ||
    { echo "cluster.sh: build failed; last lines:" >&2; tail -30 "$OUT/cmake-build.log" >&2; exit 1; }
  bt=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt")
  [[ $bt == Release ]] || echo "   note: $BUILD_DIR is a '${bt:-no type}' build, not Release"
fi
[[ -x $LOADGEN ]] || { echo "cluster.sh: $LOADGEN not built" >&2; exit 1; }
[[ -x $MOONWIRE ]] || { echo "cluster.sh: $MOONWIRE not built" >&2; exit 1; }
"$LOADGEN" --help | grep -q -- --sender-url ||
  { echo "cluster.sh: $LOADGEN has no --sender-url; rebuild it (drop --no-build)" >&2; exit 1; }

# ---- ports ------------------------------------------------------------------------------
TAKEN=" "
free_port() { # below the ephemeral range, so the load generator's own ports never collide
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $TAKEN == *" $p "* ]] && continue
    port_busy "$p" && continue
    TAKEN+="$p "
    echo "$p"
    return 0
  done
  echo "cluster.sh: no free port found" >&2
  return 1
}
pick() { # VAR: keep a given port (it must be free), else pick one
  local v=$1
  if [[ -n ${!v} ]]; then
    port_busy "${!v}" && { echo "cluster.sh: port ${!v} ($v) is already in use" >&2; exit 1; }
    TAKEN+="${!v} "
  fi
}
for v in REDIS_PORT PORT_A PORT_B PORT_W; do pick "$v"; done
[[ -n $REDIS_PORT ]] || REDIS_PORT=$(free_port)
[[ -n $PORT_A ]] || PORT_A=$(free_port)
[[ -n $PORT_B ]] || PORT_B=$(free_port)
[[ -n $PORT_W ]] || PORT_W=$(free_port)
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0

# ---- redis ------------------------------------------------------------------------------
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
for ((i = 0; ; i++)); do
  if ! kill -0 "$REDIS_PID" 2>/dev/null; then
    echo "cluster.sh: redis-server exited during start-up; log:" >&2
    tail -20 "$OUT/redis.log" >&2
    exit 1
  fi
  if [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || true) == PONG ]] ||
     { ! command -v redis-cli >/dev/null && port_busy "$REDIS_PORT"; }; then
    break
  fi
  ((i < 100)) || { echo "cluster.sh: redis-server did not answer on port $REDIS_PORT" >&2; exit 1; }
  sleep 0.1
done

# ---- moonwire ---------------------------------------------------------------------------
SERVER_PID=""
# start_moonwire APP PORT LOG WORKERS: waits for /health 200 from every worker (20 s).
start_moonwire() {
  local app=$1 port=$2 log=$3 workers=$4 i seen=" " id n=0
  MOONWIRE_LOG_LEVEL=$LOG_LEVEL "$MOONWIRE" serve "$app" --host 127.0.0.1 --port "$port" \
    --workers "$workers" --redis "$REDIS_URL" >"$log" 2>&1 &
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  for ((i = 0; i < 400; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "cluster.sh: moonwire on port $port exited during start-up; log:" >&2
      tail -20 "$log" >&2
      return 1
    fi
    # Each new connection may land on another worker (SO_REUSEPORT): wait until every worker
    # has answered both /health and /ready (its Redis connections are up).
    id=$(curl -fsS --max-time 1 "http://127.0.0.1:$port/health" 2>/dev/null |
         sed -n 's/.*"workerId":"\([^"]*\)".*/\1/p' || true)
    if [[ -n $id && $seen != *" $id "* ]]; then
      seen+="$id "
      n=$((n + 1))
    fi
    if ((n >= workers)) && curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "cluster.sh: moonwire on port $port: $n of $workers worker(s) answered /health in 20 s; log:" >&2
  tail -20 "$log" >&2
  return 1
}

FAILED=0
# run_loadgen NAME URL SENDER_URL [extra mw_loadgen args]: one measured run, JSON to results.
run_loadgen() {
  local name=$1 url=$2 surl=$3 out=$OUT/$1.loadgen.txt limit rc=0
  shift 3
  limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { printf "%d", w + d + 120 }')
  timeout --kill-after=5 "$limit" "$LOADGEN" --url "$url" --sender-url "$surl" \
    -c "$CONNECTIONS" -d "$DURATION" --warmup "$WARMUP" --scenario broadcast --rate "$RATE" \
    --senders "$SENDERS" --payload "$PAYLOAD" --label "$name" --json "$@" >"$out" 2>&1 &
  local lg=$!
  STARTED+=("$lg")
  wait "$lg" || rc=$?
  forget_pid "$lg"
  grep -v '^{' "$out" | sed 's/^/   /' || true
  if grep -q '^{' "$out"; then
    grep '^{' "$out" | tail -1 >>"$RESULTS"
  else
    echo "cluster.sh: mw_loadgen ($name) exited with status $rc and no result" >&2
    printf '{"label":"%s","failed":"mw_loadgen exit status %s"}\n' "$name" "$rc" >>"$RESULTS"
    FAILED=1
  fi
}

check_alive() { # PID NAME LOG
  if ! kill -0 "$1" 2>/dev/null; then
    echo "cluster.sh: $2 DIED during the run; log tail:" >&2
    tail -20 "$3" >&2
    FAILED=1
    return 1
  fi
}

stop_server() {
  stop_pid "$1"
  forget_pid "$1"
}

log_errors() { # LOG
  if [[ -s $1 ]] && grep -qiE 'error|fatal|panic|assert' "$1"; then
    echo "   ($1 has errors:)"
    grep -iE 'error|fatal|panic|assert' "$1" | head -5 | sed 's/^/   | /'
  fi
}

echo "== $CONNECTIONS receivers, $RATE broadcasts/s from $SENDERS sender(s), payload $PAYLOAD B," \
  "$DURATION s after $WARMUP s warm-up; $(nproc) CPUs; redis-server on port $REDIS_PORT"
echo "== results in $OUT"

for scenario in $SCENARIOS; do
  case $scenario in
    hosts)
      echo
      echo "== two hosts: A on port $PORT_A, B on port $PORT_B, one worker each, sharing Redis"
      start_moonwire tests/bench/app "$PORT_A" "$OUT/host-a.log" 1 || { FAILED=1; continue; }
      pid_a=$SERVER_PID
      if ! start_moonwire tests/bench/app "$PORT_B" "$OUT/host-b.log" 1; then
        FAILED=1
        stop_server "$pid_a"
        continue
      fi
      pid_b=$SERVER_PID
      echo "-- cross-host: senders on A, $CONNECTIONS receivers on B (A -> Redis -> B)"
      run_loadgen cross-host "ws://127.0.0.1:$PORT_B/ws" "ws://127.0.0.1:$PORT_A/ws"
      check_alive "$pid_a" "host A" "$OUT/host-a.log" && check_alive "$pid_b" "host B" "$OUT/host-b.log" || true
      echo "-- local: senders on A, $CONNECTIONS receivers on A (A -> A)"
      run_loadgen local "ws://127.0.0.1:$PORT_A/ws" "ws://127.0.0.1:$PORT_A/ws"
      check_alive "$pid_a" "host A" "$OUT/host-a.log" && check_alive "$pid_b" "host B" "$OUT/host-b.log" || true
      stop_server "$pid_b"
      stop_server "$pid_a"
      log_errors "$OUT/host-a.log"
      log_errors "$OUT/host-b.log"
      ;;
    workers)
      echo
      echo "== one host, --workers $WORKERS on port $PORT_W (tests/bench/worker_app), sharing Redis"
      start_moonwire tests/bench/worker_app "$PORT_W" "$OUT/workers.log" "$WORKERS" || { FAILED=1; continue; }
      pid_w=$SERVER_PID
      echo "-- $CONNECTIONS receivers spread over the workers; senders on whichever worker they land"
      run_loadgen workers "ws://127.0.0.1:$PORT_W/ws" "ws://127.0.0.1:$PORT_W/ws" --by-worker
      check_alive "$pid_w" "moonwire --workers $WORKERS" "$OUT/workers.log" || true
      stop_server "$pid_w"
      log_errors "$OUT/workers.log"
      ;;
  esac
done

# ---- report -----------------------------------------------------------------------------
echo
python3 - "$RESULTS" "$SENDERS" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        r = json.loads(line)
        rows[r["label"]] = r
senders = int(sys.argv[2])

def f(v, d=3):
    return "-" if v is None else f"{v:.{d}f}"

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"

hdr = f"{'path':<36}{'receivers':>10}{'msgs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'deliv %':>9}{'errors':>7}"
print(hdr)
def line(name, r):
    if r.get("failed"):
        print(f"{name:<36}  FAILED: {r['failed']}")
        return
    extra = f"  first error: {r['first_error']}" if r.get("errors") else ""
    print(f"{name:<36}{r['connections']:>10}{r['msgs_per_s']:>10.0f}{f(r['p50_ms']):>9}{f(r['p99_ms']):>9}"
          f"{f(r['max_ms']):>9}{r['delivered_ratio'] * 100:>9.2f}{r['errors']:>7}{extra}")

names = {"cross-host": "cross-host (send A, receive B)", "local": "local (send A, receive A)",
         "workers": "workers: all receivers"}
for k in ("cross-host", "local", "workers"):
    if k in rows:
        line(names[k], rows[k])
w = rows.get("workers")
if w and not w.get("failed"):
    for k, label in (("same", "  same worker as sender (direct)"), ("other", "  other worker (via Redis)")):
        print(f"{label:<36}{w[k + '_worker_samples']:>10}{'':>10}{f(w[k + '_worker_p50_ms']):>9}"
              f"{f(w[k + '_worker_p99_ms']):>9}{f(w[k + '_worker_max_ms']):>9}")
    print("  (the receivers column of the two rows above is the number of deliveries measured)")
print()
c, l = rows.get("cross-host"), rows.get("local")
if c and l and not c.get("failed") and not l.get("failed"):
    print(f"ratio cross-host/local:       p50 {ratio(c['p50_ms'], l['p50_ms'])}   p99 {ratio(c['p99_ms'], l['p99_ms'])}")
if w and not w.get("failed"):
    print(f"ratio other/same worker:      p50 {ratio(w['other_worker_p50_ms'], w['same_worker_p50_ms'])}"
          f"   p99 {ratio(w['other_worker_p99_ms'], w['same_worker_p99_ms'])}")
    if w.get("unknown_worker"):
        print(f"note: {w['unknown_worker']} deliveries in the workers run had no known worker")
print("note: msgs/s is at most rate x receivers; latency is send -> delivery on one clock")
PY
exit "$FAILED"
