#!/usr/bin/env bash
# The selfie step's latencies, one client, one request at a time: what the customer waits for.
#   classic:      POST /v1/enrollments with card + selfie (after the NFC read)
#   selfie first: POST /v1/sessions/{id}/selfie (in front of the camera), then
#                 POST /v1/enrollments with the card alone (after the NFC read)
# Prints a Markdown table of medians and p90 (curl's time_total) for docs/performance.md. SQLite, test
# cards, a real `openssl ocsp` responder, the real models; traffic to 127.0.0.1 only.
#
#   bench/selfie-step.sh [ROUNDS]      (default 30 per flow)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${JPKI_FACE_BIN:-$ROOT/target/release/jpki-face}
FACES=${JPKI_FACE_FACES:-$ROOT/../shared/data/faces/calibration}
ROUNDS=${1:-30}
WORK=$(mktemp -d -t jpki-face-selfie.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || { echo "selfie-step.sh: build first: cargo build --release" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
A_CHIP=$FACES/Pierce_Brosnan/Pierce_Brosnan_0002.jpg
A_SELFIE=$FACES/Pierce_Brosnan/Pierce_Brosnan_0005.jpg

CA=$WORK/ca
"$BIN" dev card init "$CA" >/dev/null
PERSON=$("$BIN" dev card issue "$CA" --photo "$A_CHIP" --with-hojo | tail -n 1)
OCSP_PORT=$(free_port)
(cd "$CA" && exec timeout 3600 openssl ocsp -index index.txt -port "$OCSP_PORT" -rsigner ocsp.pem -rkey ocsp.key -CA ca.pem \
   -nmin 5 -ignore_err </dev/null >"$WORK/ocsp.log" 2>&1) &
PIDS+=($!)
until grep -q "waiting for OCSP client" "$WORK/ocsp.log"; do sleep 0.05; done

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
export JPKI_FACE__DATABASE__URL=sqlite://$WORK/bench.db
export JPKI_FACE__SERVER__BIND=127.0.0.1:$PORT
export JPKI_FACE__CARD__TRUST_DIR=$CA/trust
export JPKI_FACE__JLIS__OCSP__URL=http://127.0.0.1:$OCSP_PORT
export JPKI_FACE__CRYPTO__DEV_KEY_FILE=$WORK/kek.b64
export JPKI_FACE__LOG__FILTER=warn
cd "$ROOT"
"$BIN" serve >"$WORK/server.out" 2>"$WORK/server.log" &
PIDS+=($!)
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ]; do sleep 0.1; done
KEY=$("$BIN" tenant create --name bench --json | jq -r .api_key)

session() {
  curl -s -X POST "$BASE/v1/sessions" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d '{"purpose":"enrollment","subject_ref":"bench"}'
}
card() { "$BIN" dev card sign "$CA" "$PERSON" --session-id "$(jq -r .id <<<"$1")" --nonce="$(jq -r .nonce <<<"$1")" >"$2"; }
# timed EXPECTED_STATUS curl-args… -> seconds (fails the run on another status)
timed() {
  local want=$1; shift
  local out; out=$(curl -s -o "$WORK/body.json" -w '%{http_code} %{time_total}' "$@")
  [ "${out% *}" = "$want" ] || { echo "selfie-step.sh: got ${out% *}: $(cat "$WORK/body.json")" >&2; exit 1; }
  echo "${out#* }"
}

: >"$WORK/classic" ; : >"$WORK/step" ; : >"$WORK/card_only"
for _ in $(seq 1 "$ROUNDS"); do
  s=$(session); t=$(jq -r .client_token <<<"$s"); card "$s" "$WORK/card.json"
  timed 201 -X POST "$BASE/v1/enrollments" -H "authorization: Bearer $t" \
    -F "card=@$WORK/card.json;type=application/json" -F "selfie=@$A_SELFIE;type=image/jpeg" >>"$WORK/classic"
  [ "$(jq -r .status "$WORK/body.json")" = verified ] || { echo "classic not verified" >&2; exit 1; }

  s=$(session); t=$(jq -r .client_token <<<"$s"); card "$s" "$WORK/card.json"
  timed 200 -X POST "$BASE/v1/sessions/$(jq -r .id <<<"$s")/selfie" -H "authorization: Bearer $t" \
    -F "selfie=@$A_SELFIE;type=image/jpeg" >>"$WORK/step"
  timed 201 -X POST "$BASE/v1/enrollments" -H "authorization: Bearer $t" \
    -F "card=@$WORK/card.json;type=application/json" >>"$WORK/card_only"
  [ "$(jq -r .status "$WORK/body.json")" = verified ] || { echo "card-only not verified" >&2; exit 1; }
done

stats() { sort -n "$1" | awk '{v[NR]=$1} END{printf "%.1f ms | %.1f ms", v[int((NR+1)/2)]*1000, v[int(NR*0.9+0.5)]*1000}'; }
echo "| request ($ROUNDS each, one at a time) | p50 | p90 |"
echo "|---|---|---|"
echo "| classic: enrollment with card + selfie | $(stats "$WORK/classic") |"
echo "| selfie first: the selfie step | $(stats "$WORK/step") |"
echo "| selfie first: enrollment with the card alone | $(stats "$WORK/card_only") |"
