#!/usr/bin/env bash
# tests/browser/run.sh: ctest's `browser_client` entry. Installs playwright-core (pinned in
# package-lock.json) into tests/browser/node_modules with `npm ci` only when the installed copy
# does not match the lock file, then runs the node:test browser tests (headless Debian
# chromium) against $MOONWIRE_BIN. Usage: tests/browser/run.sh [test files]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "run.sh: node is missing (scripts/install-deps --test)" >&2; exit 1; }
command -v npm >/dev/null || { echo "run.sh: npm is missing (scripts/install-deps --test)" >&2; exit 1; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "run.sh: chromium is missing (scripts/install-deps --test)" >&2; exit 1; }

stamp=$here/node_modules/.moonwire-lock
(
  flock -w 300 9 # two builds' ctest runs may start at once: one installs, the other waits
  if ! cmp -s "$here/package-lock.json" "$stamp"; then
    echo "run.sh: npm ci in tests/browser" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$stamp"
  fi
) 9<"$here/package-lock.json"

cd "$here"
if [ $# -eq 0 ]; then set -- client.test.mjs pages.test.mjs presence.test.mjs admin.test.mjs compression.test.mjs; fi
exec node --test "$@"
