#!/usr/bin/env bash
# The project's test command (README, and .ci/run after fmt and clippy): installs what the
# dashboard's browser test needs when it is missing — Debian's chromium (as root) and the pinned
# playwright-core (`npm ci` in tests/e2e) — then runs every test with `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing chromium for the browser test (apt-get)"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
    else
        echo "note: no chromium; the browser test will fail and say what to install" >&2
    fi
fi
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
    echo "==> installing playwright-core for the browser test (npm ci in tests/e2e)"
    npm ci --prefix tests/e2e --no-audit --no-fund
fi

cargo test --locked "$@"
