#!/usr/bin/env bash
# Load test of the HTTP API with wrk: enrollments and transaction-time verifications at 1, 2, 4 and
# 8 concurrent clients against the release binary on SQLite, with test cards, a real `openssl ocsp`
# responder and the real models. Prints a Markdown table (p50/p99 latency, throughput) for
# docs/performance.md. Traffic goes to 127.0.0.1 only; every run is bounded in time.
#
#   bench/load.sh [DURATION_SECS]      (default 15 s per level)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${JPKI_FACE_BIN:-$ROOT/target/release/jpki-face}
FACES=${JPKI_FACE_FACES:-$ROOT/../shared/data/faces/calibration}
DURATION=${1:-15}
LEVELS=${LEVELS:-"1 2 4 8"}
WORK=$(mktemp -d -t jpki-face-load.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { echo "load.sh: install wrk (apt-get install wrk)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "load.sh: build first: cargo build --release" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
A_CHIP=$FACES/Pierce_Brosnan/Pierce_Brosnan_0002.jpg
A_SELFIE=$FACES/Pierce_Brosnan/Pierce_Brosnan_0005.jpg
A_LATER=$FACES/Pierce_Brosnan/Pierce_Brosnan_0006.jpg

CA=$WORK/ca
"$BIN" dev card init "$CA" >/dev/null
# The 入力補助AP too: tenants require it by default (card.md); an older binary without the flag issues without it.
PERSON=$("$BIN" dev card issue "$CA" --photo "$A_CHIP" $("$BIN" dev card issue --help 2>/dev/null | grep -q -- --with-hojo && echo --with-hojo) | tail -n 1)
OCSP_PORT=$(free_port)
(cd "$CA" && exec timeout 3600 openssl ocsp -index index.txt -port "$OCSP_PORT" -rsigner ocsp.pem -rkey ocsp.key -CA ca.pem \
   -nmin 5 -ignore_err </dev/null >"$WORK/ocsp.log" 2>&1) &
PIDS+=($!)
until grep -q "waiting for OCSP client" "$WORK/ocsp.log"; do sleep 0.05; done

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
export JPKI_FACE__DATABASE__URL=sqlite://$WORK/load.db
export JPKI_FACE__SERVER__BIND=127.0.0.1:$PORT
export JPKI_FACE__CARD__TRUST_DIR=$CA/trust
export JPKI_FACE__JLIS__OCSP__URL=http://127.0.0.1:$OCSP_PORT
export JPKI_FACE__CRYPTO__DEV_KEY_FILE=$WORK/kek.b64
export JPKI_FACE__LOG__FILTER=warn
export JPKI_FACE__VERIFICATION__LOCKOUT__MAX_FAILURES=1000000
cd "$ROOT"
"$BIN" serve >"$WORK/server.out" 2>"$WORK/server.log" &
PIDS+=($!)
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ]; do sleep 0.1; done
KEY=$("$BIN" tenant create --name load --json | jq -r .api_key)

# One prepared multipart request per enrollment: each needs its own session and card signature.
prepare_enrollments() {
  local n=$1 list=$2 boundary=jpkifaceloadboundary
  : >"$list"
  for i in $(seq 1 "$n"); do
    local s id nonce token f="$WORK/req-$RANDOM$RANDOM$i"
    s=$(curl -s -X POST "$BASE/v1/sessions" -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"purpose":"enrollment","subject_ref":"load"}')
    id=$(jq -r .id <<<"$s"); nonce=$(jq -r .nonce <<<"$s"); token=$(jq -r .client_token <<<"$s")
    {
      printf '%s\nmultipart/form-data; boundary=%s\n' "$token" "$boundary"
      printf -- '--%s\r\nContent-Disposition: form-data; name="card"\r\nContent-Type: application/json\r\n\r\n' "$boundary"
      "$BIN" dev card sign "$CA" "$PERSON" --session-id "$id" --nonce="$nonce"
      printf '\r\n--%s\r\nContent-Disposition: form-data; name="selfie"; filename="s.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' "$boundary"
      cat "$A_SELFIE"
      printf '\r\n--%s--\r\n' "$boundary"
    } >"$f"
    echo "$f" >>"$list"
  done
}

# wrk's summary -> "p50 p99 rps errors"
summarise() {
  awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2} /Non-2xx/{non2xx=$5} /Socket errors/{err=$0}
       END{printf "%s %s %s %s\n", p50, p99, rps, (non2xx==""?0:non2xx)}'
}

echo "| workload | clients | p50 | p99 | throughput (req/s) | non-2xx |"
echo "|---|---|---|---|---|---|"
# Enrollment: a prepared set per level (a session is single-use).
for c in $LEVELS; do
  list=$WORK/enroll-$c.list
  # About 25 enrollments/s fit on 2 cores; prepare enough that a level rarely runs out early.
  prepare_enrollments $(( (c == 1 ? 25 : 40) * DURATION + 20 )) "$list"
  read -r p50 p99 rps non2xx < <(JPKI_REQUESTS=$list wrk -t1 -c"$c" -d"${DURATION}s" --timeout 30s --latency \
      -s "$ROOT/bench/requests.lua" "$BASE" | summarise)
  echo "| enrollment (card + 2 faces) | $c | $p50 | $p99 | $rps | $non2xx |"
done

# Transaction-time verification, server to server: one fixed request (API key + enrollment id).
s=$(curl -s -X POST "$BASE/v1/sessions" -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"purpose":"enrollment"}')
[ "$(jq -r .id <<<"$s")" != null ] || { echo "load.sh: cannot open a session: $s" >&2; tail -5 "$WORK/server.log" >&2; exit 1; }
card=$WORK/card.json
"$BIN" dev card sign "$CA" "$PERSON" --session-id "$(jq -r .id <<<"$s")" --nonce="$(jq -r .nonce <<<"$s")" >"$card"
ENR=$(curl -s -X POST "$BASE/v1/enrollments" -H "authorization: Bearer $(jq -r .client_token <<<"$s")" \
  -F "card=@$card;type=application/json" -F "selfie=@$A_SELFIE;type=image/jpeg" | jq -r .id)
[ "$ENR" != null ] || { echo "load.sh: the enrollment for the verify run failed" >&2; exit 1; }
boundary=jpkifaceverifyboundary
body=$WORK/verify.body
{
  printf -- '--%s\r\nContent-Disposition: form-data; name="enrollment_id"\r\n\r\n%s\r\n' "$boundary" "$ENR"
  printf -- '--%s\r\nContent-Disposition: form-data; name="selfie"; filename="s.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' "$boundary"
  cat "$A_LATER"
  printf '\r\n--%s--\r\n' "$boundary"
} >"$body"
cat >"$WORK/verify.lua" <<LUA
local f = assert(io.open("$body", "rb")); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=$boundary"
LUA
for c in $LEVELS; do
  read -r p50 p99 rps non2xx < <(wrk -t1 -c"$c" -d"${DURATION}s" --timeout 30s --latency -s "$WORK/verify.lua" "$BASE/v1/transactions/verify" | summarise)
  echo "| transaction verify (1 face) | $c | $p50 | $p99 | $rps | $non2xx |"
done
