#!/bin/sh
# run_ui_test.sh - ctest serve_ui: the status page in headless Chromium
# (test_ui.js). Installs playwright-core from npm into NODE_PREFIX (under the
# build tree) the first time; skips (77) only when the tools are missing.
#
# Usage: run_ui_test.sh NODE_PREFIX    (the binaries come in MCACHE_*_BIN)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:?usage: run_ui_test.sh NODE_PREFIX}
chromium=${MCACHE_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
    echo "skip: no Chromium at $chromium (apt-get install chromium, or set MCACHE_CHROMIUM)"
    exit 77
fi
if ! command -v node >/dev/null 2>&1; then
    echo "skip: no node on PATH (Node.js 18 or later runs the status page test)"
    exit 77
fi
if [ ! -f "$prefix/node_modules/playwright-core/package.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "skip: playwright-core is not installed in $prefix and there is no npm to install it"
        exit 77
    fi
    echo "installing playwright-core into $prefix"
    mkdir -p "$prefix"
    # --no-save: no package.json or lock file is written; the browser is Debian's, none is downloaded.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit --no-fund --loglevel=error \
        --prefix "$prefix" playwright-core@1
fi

export MCACHE_CHROMIUM="$chromium"
export NODE_PATH="$prefix/node_modules"
exec node "$here/test_ui.js"
