#!/usr/bin/env bash
# Installs the PC/SC stack the reader builds and tests against, from Debian's packages, when missing:
# pcscd (the daemon), vsmartcard-vpcd (its virtual reader driver, for the virtual card), pcsc-tools,
# libpcsclite-dev (the `reader` feature links libpcsclite), opensc (pkcs11-tool, an independent client) and
# iproute2 (`ip`: tests/reader.rs brings up loopback in pcscd's private network namespace).
# Idempotent: quick when everything is there. Runs `apt-get update` only when a package is not found.
set -euo pipefail
packages=(pcscd pcsc-tools vsmartcard-vpcd libpcsclite-dev opensc iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-pcsc: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
else
  echo "ensure-pcsc: please install: ${missing[*]}" >&2
  exit 1
fi
