#!/usr/bin/env bash
# examples/echo/autobahn.sh: runs the Autobahn|Testsuite fuzzingclient against examples/echo served
# by a local moonwire on 127.0.0.1 and prints a summary. Optional: not part of ctest.
#
#   examples/echo/autobahn.sh                       cases 1.* to 10.* (about a minute)
#   CASES='1.*,7.*' examples/echo/autobahn.sh       any case list
#   examples/echo/autobahn.sh '1.*,7.*'             the same, as an argument
#   examples/echo/autobahn.sh --compression         permessage-deflate on (MOONWIRE_COMPRESSION=1):
#                                                   cases 12.* and 13.* by default (several minutes)
#   examples/echo/autobahn.sh --compression '1.*'   any case list with compression on
#
# The fuzzingclient is `wstest` from autobahntestsuite (a Python 2 program, not in Debian: the
# python3-autobahn package ships only the library; README.md says how to install it). The
# script uses $WSTEST when set, else `wstest` from PATH, else the official image
# crossbario/autobahn-testsuite with podman or docker on the host network, but only when that
# image is already present locally: it never pulls. With none of them it exits 2.
#
# Environment: MOONWIRE_BIN (default build/moonwire), PORT (default 9001), CASES (default
# 1.* to 10.*, or 12.*,13.* with --compression), EXCLUDE (default 12.*,13.* without
# --compression: those cases need permessage-deflate; none with it), COMPRESSION=1 (the same as
# --compression), WSTEST, IMAGE, REPORTS (default $TMPDIR/moonwire-autobahn), TIMEOUT (s,
# default 1800).
# Exit status: 0 when no case FAILED, 1 otherwise, 2 when it could not run.
set -euo pipefail

compression=${COMPRESSION:-0}
while [ $# -gt 0 ]; do
  case $1 in
    --compression) compression=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "autobahn.sh: unknown option $1" >&2; exit 2 ;;
    *) CASES=$1 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${MOONWIRE_BIN:-$root/build/moonwire}
port=${PORT:-9001}
if [ "$compression" = 1 ]; then
  cases=${CASES:-12.*,13.*}
  exclude=${EXCLUDE:-}
else
  cases=${CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*}
  exclude=${EXCLUDE:-12.*,13.*}
fi
image=${IMAGE:-crossbario/autobahn-testsuite}
reports=${REPORTS:-${TMPDIR:-/tmp}/moonwire-autobahn}
mkdir -p "$reports" && reports=$(cd "$reports" && pwd)
limit=${TIMEOUT:-1800}

[ -x "$bin" ] || { echo "autobahn.sh: no moonwire binary at $bin (build it, or set MOONWIRE_BIN)" >&2; exit 2; }
if [ -n "${EXCLUDE+set}" ] && [ -z "$EXCLUDE" ]; then exclude=""; fi

image_present() { # engine: is $image already local? (never pulls)
  case $1 in
    podman) podman image exists "$image" 2>/dev/null ;;
    *) [ -n "$(docker image ls -q "$image" 2>/dev/null)" ] ;;
  esac
}

runner=()
if [ -n "${WSTEST:-}" ]; then
  [ -x "$WSTEST" ] || command -v "$WSTEST" >/dev/null 2>&1 ||
    { echo "autobahn.sh: WSTEST=$WSTEST is not an executable" >&2; exit 2; }
  runner=("$WSTEST")
  spec_dir=$reports
elif command -v wstest >/dev/null 2>&1; then
  runner=(wstest)
  spec_dir=$reports
else
  for engine in podman docker; do
    if command -v "$engine" >/dev/null 2>&1 && image_present "$engine"; then
      runner=("$engine" run --rm --network host -v "$reports:/reports" "$image" wstest)
      spec_dir=/reports
      break
    fi
  done
fi
if [ ${#runner[@]} -eq 0 ]; then
  cat >&2 <<EOF
autobahn.sh: skipped: no Autobahn fuzzingclient here. It needs one of:
  - WSTEST=/path/to/wstest, or \`wstest\` on PATH (autobahntestsuite, Python 2.7);
  - the image $image already present for podman or docker (this script never pulls it).
See "Installing wstest without a container registry" in examples/echo/README.md.
EOF
  exit 2
fi

json_list() { # "a,b" -> ["a", "b"]
  local IFS=, out="" item
  for item in $1; do out="$out${out:+, }\"$item\""; done
  printf '[%s]' "$out"
}

cat >"$reports/fuzzingclient.json" <<EOF
{
  "outdir": "$spec_dir/servers",
  "servers": [{"agent": "moonwire", "url": "ws://127.0.0.1:$port/ws"}],
  "cases": $(json_list "$cases"),
  "exclude-cases": $(json_list "$exclude"),
  "exclude-agent-cases": {}
}
EOF
rm -f "$reports/servers/index.json"

log=$reports/moonwire.log
MOONWIRE_COMPRESSION=$compression "$bin" serve "$here" --host 127.0.0.1 --port "$port" --log-level warn >"$log" 2>&1 &
server=$!
stop_server() {
  kill -TERM "$server" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$server" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$server" 2>/dev/null || true
}
trap stop_server EXIT

ready=0
for _ in $(seq 100); do
  if ! kill -0 "$server" 2>/dev/null; then break; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 &&
      read -r -t 2 _ status _ <&3 && [ "$status" = 200 ]) 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "autobahn.sh: moonwire did not start on 127.0.0.1:$port; its log:" >&2
  cat "$log" >&2
  exit 2
fi

echo "autobahn.sh: ${runner[*]} -m fuzzingclient against ws://127.0.0.1:$port/ws (cases $cases; excluded ${exclude:-none}; compression $([ "$compression" = 1 ] && echo on || echo off))"
rc=0
timeout "$limit" "${runner[@]}" -m fuzzingclient -s "$spec_dir/fuzzingclient.json" >"$reports/wstest.log" 2>&1 || rc=$?
if [ ! -f "$reports/servers/index.json" ]; then
  echo "autobahn.sh: the fuzzingclient wrote no report (exit $rc); its output:" >&2
  tail -n 40 "$reports/wstest.log" >&2
  exit 2
fi

status=0
python3 - "$reports/servers/index.json" <<'EOF' || status=$?
import json, sys
from collections import Counter

def key(case):
    return [int(p) for p in case.split(".")]

index = json.load(open(sys.argv[1]))
results = index.get("moonwire") or next(iter(index.values()), {})
counts, failed = Counter(), []
for case in sorted(results, key=key):
    r = results[case]
    verdict = "FAILED" if "FAILED" in (r.get("behavior"), r.get("behaviorClose")) else r.get("behavior", "?")
    counts[verdict] += 1
    if verdict == "FAILED":
        failed.append(f"  {case}: behavior {r.get('behavior')}, close {r.get('behaviorClose')}, "
                      f"remote close code {r.get('remoteCloseCode')}")
print(f"{len(results)} cases: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
if failed:
    print("failed:")
    print("\n".join(failed))
sys.exit(1 if failed else 0)
EOF
echo "autobahn.sh: HTML report in $reports/servers/index.html"
exit "$status"
