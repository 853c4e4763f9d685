#!/usr/bin/env bash
# Installs the command-line tools the tests drive, from Debian's packages, when missing:
# openssl (the OCSP responder), curl and jq (the end-to-end script), oathtool (the console tests' TOTP codes).
set -euo pipefail
missing=()
for tool in openssl:openssl curl:curl jq:jq sqlite3:sqlite3 pg_dump:postgresql-client psql:postgresql-client oathtool:oathtool; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-tools: installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "ensure-tools: please install: ${missing[*]}" >&2
  exit 1
fi
