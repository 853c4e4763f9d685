#!/usr/bin/env bash
# Installs what the console's browser suite drives, from Debian's packages, when missing: chromium
# (run headless), chromium-driver (its WebDriver server, `chromedriver`) and fonts-ipafont-gothic (a
# Japanese font: the console speaks Japanese by default, and its screenshots should show the words).
# The suite's TOTP codes come from oathtool, which scripts/ensure-tools.sh installs.
# Idempotent and quiet when everything is there. Runs `apt-get update` only when a package is not found.
set -euo pipefail
packages=(chromium chromium-driver fonts-ipafont-gothic)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-browser: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
else
  echo "ensure-browser: please install: ${missing[*]}" >&2
  exit 1
fi
