#!/usr/bin/env bash
# run.sh: benchmark moonwire (Lua controller and raw mode) against Bun and Node's ws with one load
# generator, the same parameters and the same machine, then print a table and the ratios.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: tests/bench/run.sh [options]

Builds moonwire and mw_loadgen (Release), then for every scenario starts each server on its own
port, waits for GET /health, runs mw_loadgen against it, stops it, and prints a table and ratios.

Servers (all of them by default):
  moonwire      tests/bench/app: each request goes through a Lua controller (`return data`),
                JSON decoded and encoded; broadcast is sendMessageToAll
  moonwire-raw  tests/bench/raw_app: raw mode (as examples/echo), each message sent back
                unchanged by `raw = function(clientId, data, isBinary)`; echo only
  bun           tests/bench/bun_peer.js on Bun.serve (uWebSockets inside): raw echo;
                broadcast is ws.subscribe(topic) on open + server.publish
  ws-raw        tests/bench/ws_peer.js --raw on Node's ws: raw echo; echo only
  ws            tests/bench/ws_peer.js on Node's ws: the bench protocol as moonwire (JSON
                parse, route, reply with requestId); broadcast sends one Buffer to each client
  moonwire-dev  moonwire serve --dev on tests/bench/app (app code without the JIT, hot reload)
The raw servers send the request itself back; mw_loadgen matches it by requestId and data.p.
Bun: --bun PATH (BENCH_BUN), else `bun` on PATH, else the binary of npm's @oven/bun-linux-x64
(-baseline without AVX2; aarch64 on arm), installed into tests/bench/node_modules on first use
(npm install --no-save --prefix tests/bench ...); the bun rows are skipped, with a message,
when none of these works.

  -c, --connections N   connections per run            (BENCH_CONNECTIONS, default 1000)
  -d, --duration S      measured seconds per run       (BENCH_DURATION, default 10)
  -w, --warmup S        warm-up seconds per run        (BENCH_WARMUP, default 2)
  --scenarios LIST      "echo broadcast"               (BENCH_SCENARIOS); also "half":
                        echo at half of each server's own echo msgs/s from the same run
                        (mw_loadgen --echo-rate; list it after echo): its p99 is the
                        latency at a normal load, issue 12's "p99 < 5 ms at half the peak"
                        "idle": connections held open, nothing sent, RSS sampled at the
                        end (tests/bench/idle.sh)
  --servers LIST        "moonwire moonwire-raw bun ws-raw ws" (BENCH_SERVERS; see above)
  --payload BYTES       data.p size                    (BENCH_PAYLOAD, default 32)
  --depth N             echo pipeline depth            (BENCH_DEPTH, default 1)
  --rate R              broadcasts per second          (BENCH_RATE, default 50)
  --senders N           broadcast sender connections   (BENCH_SENDERS, default 1)
  --port P              moonwire port                  (BENCH_PORT, default 18080)
  --ws-port P           Node ws peer port              (BENCH_WS_PORT, default 18081)
  --bun-port P          Bun peer port                  (BENCH_BUN_PORT, default 18082)
  --bun PATH            the bun binary                 (BENCH_BUN; default: see above)
  --log-level L         moonwire --log-level           (BENCH_LOG_LEVEL, default warn)
  --pin                 pin each server to CPU 0 and the load generator to the other CPUs
                        (BENCH_PIN=1; needs taskset and 2+ CPUs); use it for the comparison
  --build-dir DIR       CMake build directory          (BENCH_BUILD_DIR, default build)
  --out DIR             logs and results.jsonl         (BENCH_OUT, default BUILD/bench-results/TIME)
  --no-build            use the binaries already built
  -h, --help            this text

Each server is restarted for every scenario, so memory figures start from a fresh process.
RSS is VmRSS of the server process and all its descendants (moonwire: supervisor + workers),
sampled when the measured window ends. "KiB/conn" is RSS / open connections; "added" is
(RSS - RSS before connecting) / connections, the marginal cost of one connection.
"srv CPU%" and "lg CPU%" are the user + system CPU time of the server (with its descendants)
and of mw_loadgen in the measured window, in % of one core. With --pin, a row where mw_loadgen
is near a full core and the server well under one is marked "load generator bound": the
load generator, not the server, set its msgs/s.

Ratios (echo): Lua path / Bun raw (moonwire / bun), Lua path / ws raw (moonwire / ws-raw),
moonwire raw / Bun raw (moonwire-raw / bun), moonwire raw / ws raw, Lua path / ws protocol
(moonwire / ws); (broadcast): moonwire / Bun publish, moonwire / ws. Issue 12's targets are
shown beside the first three. A broadcast ratio means something only when a server does not
keep up: raise --rate until delivered % or p99 part (msgs/s is capped at rate x connections).

The full comparison (about 3 minutes):
  tests/bench/run.sh --pin -c 100 --depth 10 -d 10 -w 2 --rate 5000
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CONNECTIONS=${BENCH_CONNECTIONS:-1000}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
SCENARIOS=${BENCH_SCENARIOS:-echo broadcast}
SERVERS=${BENCH_SERVERS:-moonwire moonwire-raw bun ws-raw ws}
PAYLOAD=${BENCH_PAYLOAD:-32}
DEPTH=${BENCH_DEPTH:-1}
RATE=${BENCH_RATE:-50}
SENDERS=${BENCH_SENDERS:-1}
MW_PORT=${BENCH_PORT:-18080}
WS_PORT=${BENCH_WS_PORT:-18081}
BUN_PORT=${BENCH_BUN_PORT:-18082}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
PIN=${BENCH_PIN:-0}
BUN=${BENCH_BUN:-}
BUILD_DIR=${BENCH_BUILD_DIR:-build}
OUT=${BENCH_OUT:-}
BUILD=1

BENCH_SCRIPT=run.sh
# shellcheck source=tests/bench/common.sh
source "$ROOT/tests/bench/common.sh"

while [[ $# -gt 0 ]]; do
  case $1 in
    -c|--connections) need_arg "$@"; CONNECTIONS=$2; shift 2 ;;
    -d|--duration) need_arg "$@"; DURATION=$2; shift 2 ;;
    -w|--warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --scenarios) need_arg "$@"; SCENARIOS=$2; shift 2 ;;
    --servers) need_arg "$@"; SERVERS=$2; shift 2 ;;
    --payload) need_arg "$@"; PAYLOAD=$2; shift 2 ;;
    --depth) need_arg "$@"; DEPTH=$2; shift 2 ;;
    --rate) need_arg "$@"; RATE=$2; shift 2 ;;
    --senders) need_arg "$@"; SENDERS=$2; shift 2 ;;
    --port) need_arg "$@"; MW_PORT=$2; shift 2 ;;
    --ws-port) need_arg "$@"; WS_PORT=$2; shift 2 ;;
    --bun-port) need_arg "$@"; BUN_PORT=$2; shift 2 ;;
    --bun) need_arg "$@"; BUN=$2; shift 2 ;;
    --log-level) need_arg "$@"; LOG_LEVEL=$2; shift 2 ;;
    --pin) PIN=1; shift ;;
    --build-dir) need_arg "$@"; BUILD_DIR=$2; shift 2 ;;
    --out) need_arg "$@"; OUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

for v in CONNECTIONS DEPTH SENDERS MW_PORT WS_PORT BUN_PORT PAYLOAD; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number, got '${!v}'" >&2; exit 2; }
done
for v in DURATION WARMUP RATE; do
  [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run.sh: $v must be a number, got '${!v}'" >&2; exit 2; }
done
for s in $SCENARIOS; do
  [[ $s == echo || $s == broadcast || $s == half || $s == idle ]] || { echo "run.sh: unknown scenario $s" >&2; exit 2; }
done
for s in $SERVERS; do
  case $s in
    moonwire|moonwire-dev|moonwire-raw|bun|ws|ws-raw) ;;
    *) echo "run.sh: unknown server $s (moonwire moonwire-raw moonwire-dev bun ws ws-raw)" >&2; exit 2 ;;
  esac
done
has_server() { [[ " $SERVERS " == *" $1 "* ]]; }
needs_moonwire() { has_server moonwire || has_server moonwire-dev || has_server moonwire-raw; }

OUT=${OUT:-$BUILD_DIR/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

# ---- processes we start, stopped on every exit path -------------------------------------
STARTED=()
cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  STARTED=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build ------------------------------------------------------------------------------
LOADGEN=$BUILD_DIR/tests/bench/mw_loadgen
MOONWIRE=$BUILD_DIR/moonwire
if [[ $BUILD == 1 ]]; then
  targets=(mw_loadgen)
  needs_moonwire && targets+=(moonwire)
  echo "== building ${targets[*]} (Release) in $BUILD_DIR"
  if cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake-configure.log" 2>&1 &&
     cmake --build "$BUILD_DIR" --target "${targets[@]}" -j "$(nproc)" >"$OUT/cmake-build.log" 2>&1; then
    :
  elif ! needs_moonwire; then
    # The server tree may not configure yet: the load generator also builds on its own.
    echo "   top-level build failed (see $OUT/cmake-*.log); building mw_loadgen standalone"
    LOADGEN=$BUILD_DIR/bench-standalone/mw_loadgen
    cmake -S tests/bench -B "$BUILD_DIR/bench-standalone" -DCMAKE_BUILD_TYPE=Release \
      >"$OUT/cmake-standalone.log" 2>&1 &&
      cmake --build "$BUILD_DIR/bench-standalone" -j "$(nproc)" >>"$OUT/cmake-standalone.log" 2>&1 ||
      { tail -30 "$OUT/cmake-standalone.log" >&2; exit 1; }
  else
    echo "run.sh: build failed; last lines:" >&2
    tail -30 "$OUT/cmake-build.log" 2>/dev/null >&2 || tail -30 "$OUT/cmake-configure.log" >&2
    exit 1
  fi
fi
if [[ ! -x $LOADGEN && -x $BUILD_DIR/bench-standalone/mw_loadgen ]]; then
  LOADGEN=$BUILD_DIR/bench-standalone/mw_loadgen
fi
[[ -x $LOADGEN ]] || { echo "run.sh: $LOADGEN not built" >&2; exit 1; }
if needs_moonwire && [[ ! -x $MOONWIRE ]]; then
  echo "run.sh: $MOONWIRE not built" >&2
  exit 1
fi

# ---- peers ------------------------------------------------------------------------------
NODE=$(command -v node || true)
[[ -n $NODE ]] || { echo "run.sh: node is needed for the report (and the ws peers)" >&2; exit 1; }

# npm prunes what it did not list itself (--no-save leaves no package.json), so every install
# names all the packages tests/bench/node_modules should keep.
case $(uname -m) in
  x86_64) BUN_PKG=@oven/bun-linux-x64 ;;
  aarch64|arm64) BUN_PKG=@oven/bun-linux-aarch64 ;;
  *) BUN_PKG="" ;;
esac
npm_install() { # PACKAGE...: installs them and keeps the ones already there
  local pkgs=("$@") p
  for p in ws "$BUN_PKG" "$BUN_PKG-baseline"; do
    [[ -n $p && -f tests/bench/node_modules/$p/package.json && " ${pkgs[*]} " != *" $p "* ]] && pkgs+=("$p")
  done
  echo "== npm install ${pkgs[*]} into tests/bench/node_modules"
  npm install --no-save --no-audit --no-fund --prefix tests/bench "${pkgs[@]}" >>"$OUT/npm.log" 2>&1
}
bun_works() { "$1" --version >/dev/null 2>&1; }

if { has_server ws || has_server ws-raw; } && [[ ! -f tests/bench/node_modules/ws/package.json ]]; then
  npm_install ws || { cat "$OUT/npm.log" >&2; exit 1; }
fi

if has_server bun; then
  if [[ -n $BUN ]]; then
    bun_works "$BUN" || { echo "run.sh: --bun/BENCH_BUN $BUN does not run ($BUN --version failed)" >&2; exit 1; }
  elif command -v bun >/dev/null 2>&1 && bun_works bun; then
    BUN=$(command -v bun)
  elif [[ -z $BUN_PKG ]]; then
    echo "== bun: not on PATH and npm ships no Bun for $(uname -m); skipping the bun rows"
  else
    # The plain x64 build needs AVX2; the -baseline package runs on any x86-64.
    for pkg in "$BUN_PKG" "$BUN_PKG-baseline"; do
      [[ $pkg == *-aarch64-baseline ]] && continue
      cand=tests/bench/node_modules/$pkg/bin/bun
      if [[ ! -x $cand ]]; then
        npm_install "$pkg" || { echo "   npm install $pkg failed (see $OUT/npm.log)"; continue; }
      fi
      if bun_works "$cand"; then BUN=$cand; break; fi
      echo "   $cand does not run on this machine"
    done
    [[ -n $BUN ]] ||
      echo "== bun: not on PATH and not installable from npm (see $OUT/npm.log); skipping the bun rows"
  fi
  if [[ -n $BUN ]]; then echo "== bun $("$BUN" --version) at $BUN"; fi
fi

TASKSET_SERVER=()
TASKSET_LOADGEN=()
PIN_NOTE="; not pinned"
if [[ $PIN == 1 ]]; then
  cpus=$(nproc)
  if command -v taskset >/dev/null && ((cpus >= 2)); then
    TASKSET_SERVER=(taskset -c 0)
    TASKSET_LOADGEN=(taskset -c "1-$((cpus - 1))")
    PIN_NOTE="; servers pinned to CPU 0, mw_loadgen to CPU 1-$((cpus - 1))"
  else
    echo "== --pin: needs taskset and 2+ CPUs; running unpinned"
  fi
fi


SERVER_PID=""
# start_server NAME PORT LOG SCENARIO: starts it in the background, waits for /health 200 (20 s).
start_server() {
  local name=$1 port=$2 log=$3 scenario=$4 i
  if port_busy "$port"; then
    echo "run.sh: port $port is already in use; pick another (--port/--ws-port/--bun-port)" >&2
    return 1
  fi
  local cmd=()
  case $name in
    moonwire) cmd=("$MOONWIRE" serve tests/bench/app) ;;
    moonwire-dev) cmd=("$MOONWIRE" serve tests/bench/app --dev) ;;
    moonwire-raw) cmd=("$MOONWIRE" serve tests/bench/raw_app) ;;
    ws) cmd=("$NODE" tests/bench/ws_peer.js) ;;
    ws-raw) cmd=("$NODE" tests/bench/ws_peer.js --raw) ;;
    bun)
      cmd=("$BUN" tests/bench/bun_peer.js)
      [[ $scenario == broadcast ]] && cmd+=(--broadcast)
      ;;
  esac
  MOONWIRE_LOG_LEVEL=$LOG_LEVEL "${TASKSET_SERVER[@]}" "${cmd[@]}" --host 127.0.0.1 --port "$port" \
    >"$log" 2>&1 &
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "run.sh: $name exited during start-up; log:" >&2
      tail -20 "$log" >&2
      return 1
    fi
    if curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "run.sh: $name did not answer GET /health on port $port within 20 s; log:" >&2
  tail -20 "$log" >&2
  return 1
}

stop_server() {
  local pid=$1 keep=() p
  stop_pid "$pid"
  for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

record_failure() { # scenario server reason
  printf '{"label":"%s","scenario":"%s","failed":"%s"}\n' "$2" "$1" "${3//\"/\'}" >>"$RESULTS"
}

FAILED=0
run_one() { # scenario server port
  local scenario=$1 name=$2 port=$3
  local log=$OUT/$name-$scenario.server.log out=$OUT/$name-$scenario.loadgen.txt
  echo
  echo "== $scenario against $name (port $port)"
  if ! start_server "$name" "$port" "$log" "$scenario"; then
    record_failure "$scenario" "$name" "server did not start"
    FAILED=1
    return 0
  fi
  local pid=$SERVER_PID limit rc=0 lg_scenario=$scenario extra=()
  limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { printf "%d", w + d + 120 }')
  if [[ $scenario == half ]]; then # half of this server's echo msgs/s in this run
    local peak
    peak=$(grep "\"label\":\"$name\"" "$RESULTS" | grep '"scenario":"echo"' | grep -o '"msgs_per_s":[0-9.]*' |
      tail -1 | cut -d: -f2)
    if [[ -z $peak ]]; then
      echo "   no echo result for $name in this run: half skipped (list echo before half)"
      stop_server "$pid"
      record_failure "$scenario" "$name" "no echo peak in this run"
      return 0
    fi
    lg_scenario=echo
    extra=(--echo-rate "$(awk -v p="$peak" 'BEGIN { printf "%d", p / 2 }')")
  fi
  # In the background and waited for, so a SIGTERM/SIGINT to this script acts at once.
  timeout --kill-after=5 "$limit" "${TASKSET_LOADGEN[@]}" "$LOADGEN" \
    --url "ws://127.0.0.1:$port/ws" -c "$CONNECTIONS" -d "$DURATION" --warmup "$WARMUP" \
    --scenario "$lg_scenario" --payload "$PAYLOAD" --depth "$DEPTH" --rate "$RATE" "${extra[@]}" \
    --senders "$SENDERS" --server-pid "$pid" --label "$name" --json >"$out" 2>&1 &
  local lg=$!
  STARTED+=("$lg")
  wait "$lg" || rc=$?
  stop_server "$lg"
  grep -v '^{' "$out" || true
  if ! kill -0 "$pid" 2>/dev/null; then
    local status=0
    wait "$pid" 2>/dev/null || status=$?
    echo "run.sh: $name DIED during the $scenario run (exit status $status); server log tail:" >&2
    tail -20 "$log" >&2
    record_failure "$scenario" "$name" "server died during the run (exit status $status)"
    FAILED=1
  elif grep -q '^{' "$out"; then
    grep '^{' "$out" | tail -1 | sed "s/\"scenario\":\"$lg_scenario\"/\"scenario\":\"$scenario\"/" >>"$RESULTS"
  else
    record_failure "$scenario" "$name" "mw_loadgen exited with status $rc"
    FAILED=1
  fi
  stop_server "$pid"
  if [[ -s $log ]] && grep -qiE 'error|fatal|panic|assert' "$log"; then
    echo "   ($name log has errors: $log)"
    grep -iE 'error|fatal|panic|assert' "$log" | head -5 | sed 's/^/   | /'
  fi
}

echo "== mw_loadgen: $CONNECTIONS connections, $DURATION s after $WARMUP s warm-up, payload $PAYLOAD B," \
  "echo depth $DEPTH, broadcast $RATE/s from $SENDERS sender(s); moonwire log level $LOG_LEVEL;" \
  "$(nproc) CPUs$PIN_NOTE"
echo "== results in $OUT"
for scenario in $SCENARIOS; do
  for name in $SERVERS; do
    case $name in
      moonwire*) port=$MW_PORT ;;
      ws*) port=$WS_PORT ;;
      bun) port=$BUN_PORT ;;
    esac
    if [[ ($scenario == broadcast) && $name == *-raw ]]; then
      echo
      echo "== broadcast against $name: skipped (a raw echo server has no broadcast)"
      continue
    fi
    if [[ $name == bun && -z $BUN ]]; then
      printf '{"label":"bun","scenario":"%s","skipped":"bun not found and not installable"}\n' \
        "$scenario" >>"$RESULTS"
      continue
    fi
    run_one "$scenario" "$name" "$port"
  done
done

# ---- report -----------------------------------------------------------------------------
echo
"$NODE" - "$RESULTS" "${TASKSET_SERVER:+1}" <<'JS'
const fs = require('fs');
const rows = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const pinned = process.argv[3] === '1';
// One core each when pinned: the load generator is the limit when it is near a full core and
// the server is clearly not.
const loadgenBound = (r) => pinned && r.loadgen_cpu_pct >= 90 && r.server_cpu_pct !== null &&
  r.server_cpu_pct !== undefined && r.server_cpu_pct < 85;
const fmt = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d));
const cols = [
  ['scenario', 10], ['server', 12], ['conns', 6], ['msgs/s', 10], ['p50 ms', 8], ['p99 ms', 8],
  ['max ms', 8], ['deliv %', 8], ['errors', 7], ['RSS KiB', 9], ['KiB/conn', 9], ['added', 8],
  ['srv CPU%', 9], ['lg CPU%', 8], ['srv us/msg', 10],
];
// server CPU time per message (reply or delivery): the figure a busy or load-generator-bound
// run distorts least
const usPerMsg = (r) => (r.server_cpu_pct > 0 && r.msgs_per_s > 0 ? r.server_cpu_pct * 1e4 / r.msgs_per_s : null);
const line = (cells) => cells.map((c, i) => String(c).padStart(cols[i][1])).join(' ');
console.log(line(cols.map((c) => c[0])));
for (const r of rows) {
  if (r.failed || typeof r.skipped === 'string') {
    console.log(line([r.scenario, r.label, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-']) +
      (r.failed ? '  FAILED: ' + r.failed : '  skipped: ' + r.skipped));
    continue;
  }
  console.log(line([
    r.scenario, r.label, r.connections, fmt(r.msgs_per_s), fmt(r.p50_ms, 3), fmt(r.p99_ms, 3),
    fmt(r.max_ms, 3), r.scenario === 'broadcast' ? fmt(r.delivered_ratio * 100, 1) : '-', r.errors,
    fmt(r.rss_kib), fmt(r.rss_per_conn_kib, 1), fmt(r.rss_added_per_conn_kib, 1),
    fmt(r.server_cpu_pct), fmt(r.loadgen_cpu_pct), fmt(usPerMsg(r), 3),
  ]) + (r.errors ? '  first error: ' + r.first_error : '') + (loadgenBound(r) ? '  (load generator bound)' : ''));
}
const ratio = (a, b) => (a === null || b === null || a === undefined || b === undefined || b === 0 ? '-' : String(Number((a / b).toPrecision(3))));
const find = (s, label) => rows.find((r) => r.scenario === s && r.label === label && !r.failed && typeof r.skipped !== 'string');
// [scenario, A, B, what A / B is, issue 12's msgs/s target or null]
const pairs = [
  ['echo', 'moonwire', 'bun', 'Lua path / Bun raw', 0.5],
  ['echo', 'moonwire', 'ws-raw', 'Lua path / ws raw', 3],
  ['echo', 'moonwire-raw', 'bun', 'moonwire raw / Bun raw', 1],
  ['echo', 'moonwire-raw', 'ws-raw', 'moonwire raw / ws raw', null],
  ['echo', 'moonwire', 'ws', 'Lua path / ws protocol', null],
  ['echo', 'moonwire', 'moonwire-raw', 'Lua path / moonwire raw', null],
  ['broadcast', 'moonwire', 'bun', 'moonwire broadcast / Bun publish', null],
  ['broadcast', 'moonwire', 'ws', 'moonwire broadcast / ws', null],
];
for (const s of ['echo', 'broadcast']) pairs.push([s, 'moonwire-dev', 'moonwire', 'dev mode / moonwire', null]);
const printed = [];
for (const [s, an, bn, what, target] of pairs) {
  const a = find(s, an);
  const b = find(s, bn);
  if (!a || !b) continue;
  const m = ratio(a.msgs_per_s, b.msgs_per_s);
  let t = '';
  if (target !== null && m !== '-') t = `  (target >= ${target}: ${Number(m) >= target ? 'met' : 'NOT met'})`;
  printed.push(`${s.padEnd(10)} ${what.padEnd(33)} ${(an + ' / ' + bn).padEnd(24)} msgs/s ${m.padEnd(6)}` +
    ` p99 ${ratio(a.p99_ms, b.p99_ms).padEnd(6)} RSS/conn ${ratio(a.rss_per_conn_kib, b.rss_per_conn_kib).padEnd(6)}` +
    ` added RSS/conn ${ratio(a.rss_added_per_conn_kib, b.rss_added_per_conn_kib).padEnd(6)}` +
    ` CPU efficiency ${ratio(usPerMsg(b), usPerMsg(a))}${t}`);
}
const halves = rows.filter((r) => r.scenario === 'half' && !r.failed && typeof r.skipped !== 'string');
if (halves.length) {
  console.log('\nlatency at half of each server\'s own echo peak (mw_loadgen --echo-rate; issue 12: p99 < 5 ms)');
  for (const r of halves) {
    console.log(`  ${r.label.padEnd(13)} ${fmt(r.msgs_per_s).padStart(8)} msg/s  p50 ${fmt(r.p50_ms, 3)} ms` +
      `  p99 ${fmt(r.p99_ms, 3)} ms  (${r.p99_ms < 5 ? 'met' : 'NOT met'})`);
  }
}
const idle = rows.filter((r) => r.scenario === 'idle' && !r.failed && typeof r.skipped !== 'string');
if (idle.length) {
  console.log('\nidle: user-space memory per connection (server RSS after - before connecting, / open' +
    ' connections; supervisor + workers for moonwire)');
  for (const r of idle) {
    console.log(`  ${r.label.padEnd(13)} ${fmt(r.rss_added_per_conn_kib * 1024).padStart(6)} bytes per connection` +
      ` (${r.connections} open, RSS ${fmt(r.rss_base_kib)} -> ${fmt(r.rss_kib)} KiB)`);
  }
  const mw = idle.find((r) => r.label === 'moonwire-raw') || idle.find((r) => r.label === 'moonwire');
  const bun = idle.find((r) => r.label === 'bun');
  if (mw && bun) console.log(`  ${mw.label} / bun: ${ratio(mw.rss_added_per_conn_kib, bun.rss_added_per_conn_kib)}` +
    ` (DESIGN 18: at most 1.5 KB per idle connection, less than Bun)`);
}
if (rows.some(loadgenBound)) {
  console.log('\nnote: a "load generator bound" row measured mw_loadgen (near a full core) more than the' +
    ' server (well under one): its msgs/s is a floor for that server, and ratios against it flatter the other');
}
if (printed.length) {
  console.log('\nratios A / B (msgs/s: higher is better for A; p99 and RSS: lower is better for A;' +
    ' CPU efficiency = B\'s server CPU per message / A\'s: >= 1 when A needs no more CPU per message)');
  for (const l of printed) console.log(l);
}
if (rows.some((r) => r.scenario === 'broadcast' && !r.failed)) {
  console.log('note: broadcast msgs/s is at most --rate x connections; when every server delivers' +
    ' 100 %, compare latency, or raise --rate to find the ceiling');
}
JS
exit "$FAILED"
