# tests/bench/common.sh: shell helpers shared by run.sh and cluster.sh (sourced, not run).
# BENCH_SCRIPT names the caller in messages.

need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "${BENCH_SCRIPT:-bench}: $1 needs a value" >&2; exit 2; }; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# SIGTERM, up to 10 s grace, then SIGKILL; also waits for the children it had (moonwire's
# workers are reparented when the supervisor exits first).
stop_pid() {
  local pid=$1 i kids p
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kids=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "${BENCH_SCRIPT:-bench}: pid $pid ignored SIGTERM for 10 s; killing it and its children" >&2
    kill -KILL "$pid" $kids 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for p in $kids; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
      echo "${BENCH_SCRIPT:-bench}: child $p of $pid still running 5 s after its parent exited; killing it" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
}
