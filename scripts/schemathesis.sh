#!/usr/bin/env bash
# Property-based run of the OpenAPI document with schemathesis (by hand; not part of `make test`).
# Starts a development server on a fresh SQLite store at 127.0.0.1:${ST_PORT:-8099}, runs every check,
# and stops the server. Needs `pip install schemathesis` (a venv: ST=/path/to/venv/bin/st).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${ST_PORT:-8099}"
st="${ST:-st}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$root"
cargo build --bin jpki-face -q
JPKI_FACE__DATABASE__URL="sqlite://$work/db.sqlite" JPKI_FACE__CRYPTO__DEV_KEY_FILE="$work/kek.b64" \
  ./target/debug/jpki-face serve --bind "127.0.0.1:$port" --demo-tenant > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 1; done
key=$(grep -o 'jfk_live_[A-Za-z0-9_-]*' "$work/server.log" | head -1)
"$st" --config-file tests/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  --checks all --max-examples "${ST_EXAMPLES:-25}" -H "Authorization: Bearer $key" "$@"
