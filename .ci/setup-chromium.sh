#!/usr/bin/env bash
# Installs Debian's chromium for the report's headless-browser test (tests/test_report_browser.py),
# when it is missing. Idempotent; playwright drives /usr/bin/chromium (never 'playwright install').
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
/usr/bin/chromium --version
