#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser tests (tests/test_browser.py).
# Idempotent: does nothing when both are already installed. Installs Debian's `chromium` and
# `chromium-driver` with apt-get (run as root, or with sudo available, and network access to
# the Debian package mirrors). Selenium itself comes from `pip install -e '.[test]'`.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium and chromedriver already installed: $(command -v chromium)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    # On a laptop without root the browser tests are skipped; CI must run them.
    echo "install-browser.sh: need root (or sudo) to apt-get install chromium chromium-driver;" \
        "the browser tests will be skipped" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if "${as_root[@]}" apt-get update -qq &&
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver; then
    echo "installed: $(chromium --version 2>/dev/null || echo chromium)"
else
    # No Debian mirror reachable: the browser tests skip (pytest -rs shows why), the rest run.
    echo "install-browser.sh: apt-get could not install chromium; the browser tests will be" \
        "skipped" >&2
fi
