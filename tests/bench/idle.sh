#!/usr/bin/env bash
# idle.sh: memory per idle WebSocket connection (DESIGN section 18, issue 15), side by side in one
# run: moonwire (Lua controller app and raw mode), Bun (uWebSockets) and Node's ws each hold
# 10 000 connections opened by mw_loadgen, which then sends nothing; the server's RSS (all its
# processes) is sampled before connecting and after, and the difference per connection printed.
# Options are run.sh's (see tests/bench/run.sh --help); these defaults can be overridden:
#   tests/bench/idle.sh                         10 000 connections, 5 s held
#   tests/bench/idle.sh -c 20000 --servers "moonwire-raw bun"
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec "$ROOT/tests/bench/run.sh" --scenarios idle -c "${BENCH_CONNECTIONS:-10000}" -d 5 -w 0 \
  --servers "${BENCH_SERVERS:-moonwire moonwire-raw bun ws-raw}" "$@"
