#!/usr/bin/env bash
# `make run`: the service on the embedded SQLite store, ready for curl, with everything a first try
# needs: a test-card hierarchy (data/devcard, trusted by this instance only), a local `openssl ocsp`
# responder for it on 127.0.0.1:8888, and a demo tenant whose API key is printed.
# Development only: production configures real trust anchors and the J-LIS endpoint instead.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./target/debug/jpki-face
DEV=data/devcard

if [ ! -f "$DEV/hierarchy.json" ]; then
  "$BIN" dev card init "$DEV" >/dev/null
  photo=$(ls models/samples/*.jpg 2>/dev/null | head -n 1 || true)
  if [ -n "$photo" ]; then
    person=$("$BIN" dev card issue "$DEV" --photo "$photo" --with-hojo | tail -n 1)
    echo "dev: test card $person issued in $DEV (chip photo: $photo)"
  fi
fi

ocsp_pid=
if command -v openssl >/dev/null; then
  (cd "$DEV" && exec openssl ocsp -index index.txt -port 8888 -rsigner ocsp.pem -rkey ocsp.key -CA ca.pem -nmin 5 \
     -ignore_err </dev/null >../devcard-ocsp.log 2>&1) &
  ocsp_pid=$!
  trap '[ -n "$ocsp_pid" ] && kill "$ocsp_pid" 2>/dev/null' EXIT
  echo "dev: openssl ocsp responder for the test cards on 127.0.0.1:8888"
else
  echo "dev: openssl not found: enrollments will answer 503 revocation_unavailable (install openssl)" >&2
fi

export JPKI_FACE__CARD__TRUST_DIR=${JPKI_FACE__CARD__TRUST_DIR:-$DEV/trust}
export JPKI_FACE__JLIS__OCSP__URL=${JPKI_FACE__JLIS__OCSP__URL:-http://127.0.0.1:8888}
export JPKI_FACE__LOG__FORMAT=${JPKI_FACE__LOG__FORMAT:-pretty}
"$BIN" serve --demo-tenant
