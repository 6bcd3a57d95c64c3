#!/usr/bin/env bash
# Installs what the dashboard's browser test (tests/integration/dashboard_e2e.rs) needs when it
# is missing: Debian's chromium (with apt-get, as root) and the pinned playwright-core (`npm ci`
# here). The README's test command runs it before `cargo test`; so does .ci/run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

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

