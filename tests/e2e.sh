#!/usr/bin/env bash
# End-to-end test driven as a client would: curl and jq against the real binary, once on SQLite and
# once on PostgreSQL, with test cards from `jpki-face dev card`, a real `openssl ocsp` responder and
# the real face models. Prints one line per check and a closing "N passed, N failed" line.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${JPKI_FACE_BIN:-$ROOT/target/debug/jpki-face}
FACES=${JPKI_FACE_FACES:-$ROOT/../shared/data/faces/calibration}
PG_ADMIN=${JPKI_FACE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
WORK=$(mktemp -d -t jpki-face-e2e.XXXXXX)
PIDS=()
PASSED=0
FAILED=0

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

die() { echo "e2e: $*" >&2; exit 1; }
ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok - $1${2:+ ($2)}"; }
# expect DESCRIPTION ACTUAL WANTED
expect() { if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }

[ -x "$BIN" ] || die "build first: $BIN is missing"
[ -d "$FACES" ] || die "the labelled face photos are expected at $FACES"
for tool in curl jq openssl; do command -v $tool >/dev/null || die "$tool is required"; done

A_CHIP=$FACES/Pierce_Brosnan/Pierce_Brosnan_0002.jpg
A_SELFIE=$FACES/Pierce_Brosnan/Pierce_Brosnan_0005.jpg
A_LATER=$FACES/Pierce_Brosnan/Pierce_Brosnan_0006.jpg
A_TURNED=$FACES/Pierce_Brosnan/Pierce_Brosnan_0010.jpg
B_CHIP=$FACES/Hugo_Chavez/Hugo_Chavez_0002.jpg
B_SELFIE=$FACES/Hugo_Chavez/Hugo_Chavez_0006.jpg

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- test cards and the OCSP responder ----------------------------------------------------------
CA=$WORK/ca
"$BIN" dev card init "$CA" >/dev/null || die "dev card init failed"
# Every card carries the 入力補助AP: the default tenant policy requires it (the one-card binding).
issue() { "$BIN" dev card issue "$CA" --photo "$1" --with-hojo "${@:2}" | tail -n 1; }
A=$(issue "$A_CHIP")
B=$(issue "$B_CHIP")
KC=$(issue "$A_CHIP")
AC=$(issue "$A_CHIP")
SC_SQLITE=$(issue "$A_CHIP")
SC_POSTGRES=$(issue "$A_CHIP")
"$BIN" dev card revoke "$CA" "$KC" --reason keyCompromise >/dev/null
"$BIN" dev card revoke "$CA" "$AC" --reason affiliationChanged >/dev/null

OCSP_PORT=$(free_port)
OCSP_PID=
start_responder() {
  : > "$WORK/ocsp.log"
  (cd "$CA" && exec timeout 900 openssl ocsp -index index.txt -port "$OCSP_PORT" -rsigner ocsp.pem -rkey ocsp.key \
      -CA ca.pem -nmin 5 -ignore_err </dev/null >>"$WORK/ocsp.log" 2>&1) &
  OCSP_PID=$!
  PIDS+=("$OCSP_PID")
  # Never probe it with a bare TCP connect: openssl ocsp then waits forever on that connection.
  for _ in $(seq 1 100); do grep -q "waiting for OCSP client" "$WORK/ocsp.log" && return 0; sleep 0.05; done
  die "openssl ocsp did not start"
}
# openssl ocsp re-reads index.txt between requests; one throwaway query makes the next ones current.
nudge_responder() {
  (cd "$CA" && openssl ocsp -issuer ca.pem -cert "$1/cert.pem" -url "http://127.0.0.1:$OCSP_PORT" -noverify >/dev/null 2>&1)
}
start_responder

# ---- one backend --------------------------------------------------------------------------------
run_backend() {
  local name=$1 db_url=$2 sc_person=$3
  local port; port=$(free_port)
  local base="http://127.0.0.1:$port"
  local log="$WORK/$name.log"
  export JPKI_FACE__DATABASE__URL=$db_url
  export JPKI_FACE__SERVER__BIND=127.0.0.1:$port
  export JPKI_FACE__CARD__TRUST_DIR=$CA/trust
  export JPKI_FACE__JLIS__MODE=ocsp
  export JPKI_FACE__JLIS__OCSP__URL=http://127.0.0.1:$OCSP_PORT
  export JPKI_FACE__JLIS__OCSP__CACHE_TTL_SECS=0
  export JPKI_FACE__JLIS__OCSP__RETRIES=0
  export JPKI_FACE__CRYPTO__DEV_KEY_FILE=$WORK/$name-kek.b64
  export JPKI_FACE__VERIFICATION__LOCKOUT__MAX_FAILURES=3
  export JPKI_FACE__LOG__FORMAT=json
  cd "$ROOT"
  "$BIN" serve >"$WORK/$name.out" 2>"$log" &
  local server=$!
  PIDS+=("$server")
  local ready=
  for _ in $(seq 1 200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ]; then ready=1; break; fi
    sleep 0.1
  done
  [ -n "$ready" ] || { cat "$log" >&2; die "$name: the server did not become ready"; }
  echo "# $name backend on $base"

  local key; key=$("$BIN" tenant create --name "e2e-$name" --json | jq -r .api_key)
  local H=(-H "authorization: Bearer $key")

  # session PURPOSE [ENROLLMENT] -> JSON
  session() {
    local body
    if [ "$1" = enrollment ]; then body='{"purpose":"enrollment","subject_ref":"e2e-customer"}'
    else body=$(jq -nc --arg e "$2" '{purpose:"transaction", enrollment_id:$e}'); fi
    curl -s -X POST "$base/v1/sessions" "${H[@]}" -H 'content-type: application/json' -d "$body"
  }
  # card PERSON SESSION_JSON [MUTANT] -> card JSON file
  card() {
    local id nonce out="$WORK/card-$RANDOM$RANDOM.json"
    id=$(jq -r .id <<<"$2"); nonce=$(jq -r .nonce <<<"$2")
    "$BIN" dev card sign "$CA" "$1" --session-id "$id" --nonce="$nonce" ${3:+--mutant "$3"} >"$out"
    echo "$out"
  }
  # enroll TOKEN CARD_FILE SELFIE -> "STATUS BODYFILE"
  enroll() {
    local out="$WORK/resp-$RANDOM$RANDOM.json"
    local code; code=$(curl -s -o "$out" -w '%{http_code}' -X POST "$base/v1/enrollments" -H "authorization: Bearer $1" \
      -F "card=@$2;type=application/json" -F "selfie=@$3;type=image/jpeg")
    echo "$code $out"
  }
  # verify BEARER SELFIE [ENROLLMENT_ID] -> "STATUS BODYFILE": the app's operation with a client
  # token, or the backend's own (the enrollment in the path) with the API key and an id.
  verify() {
    local out="$WORK/resp-$RANDOM$RANDOM.json" url="$base/v1/transactions/verify"
    [ -n "${3:-}" ] && url="$base/v1/enrollments/$3/verify"
    local code; code=$(curl -s -o "$out" -w '%{http_code}' -X POST "$url" -H "authorization: Bearer $1" \
      -F "selfie=@$2;type=image/jpeg")
    echo "$code $out"
  }
  count_enrollments() { curl -s "$base/v1/enrollments?subject_ref=e2e-customer" "${H[@]}" | jq '.enrollments | length'; }

  local s r code body enr tokens=()
  # 1. the same person's card photo and selfie -> verified
  s=$(session enrollment); tokens+=("$(jq -r .client_token <<<"$s")")
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$(card "$A" "$s")" "$A_SELFIE")
  expect "$name: same person enrolls (201)" "$code" 201
  expect "$name: same person is verified" "$(jq -r .status "$body")" verified
  expect "$name: identity from the certificate" "$(jq -r .identity.birth_date "$body")" 1990-01-02
  expect "$name: 入力補助AP cross-check ran" "$(jq -r .checks.hojo.result "$body")" valid
  enr=$(jq -r .id "$body")
  expect "$name: GET returns it" "$(curl -s "$base/v1/enrollments/$enr" "${H[@]}" | jq -r .status)" verified

  # 2. another person's selfie -> rejected, face_mismatch
  s=$(session enrollment)
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$(card "$B" "$s")" "$A_SELFIE")
  expect "$name: another person's selfie is rejected" "$(jq -r '.status + " " + (.reasons|join(","))' "$body")" "rejected face_mismatch"

  # 2b. the selfie step: the selfie on its own first (its verdict at once), then the card alone
  s=$(session enrollment)
  local st; st=$(jq -r .client_token <<<"$s")
  r=$(curl -s -X POST "$base/v1/sessions/$(jq -r .id <<<"$s")/selfie" -H "authorization: Bearer $st" \
    -F "selfie=@$A_SELFIE;type=image/jpeg")
  expect "$name: the selfie step passes a good selfie" "$(jq -r .result <<<"$r")" pass
  code=$(curl -s -o "$WORK/selfie-first.json" -w '%{http_code}' -X POST "$base/v1/enrollments" \
    -H "authorization: Bearer $st" -F "card=@$(card "$A" "$s");type=application/json")
  expect "$name: the card alone after the selfie step is verified" "$code $(jq -r .status "$WORK/selfie-first.json")" "201 verified"

  # 3. revoked certificates
  s=$(session enrollment)
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$(card "$KC" "$s")" "$A_SELFIE")
  expect "$name: revoked certificate -> certificate_revoked" "$(jq -r '.reasons|join(",")' "$body")" certificate_revoked
  s=$(session enrollment)
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$(card "$AC" "$s")" "$A_SELFIE")
  expect "$name: affiliationChanged -> identity_changed" "$(jq -r '.reasons|join(",")' "$body")" identity_changed

  # 4. tampered card and replayed signatures
  s=$(session enrollment)
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$(card "$A" "$s" flip-photo-bit)" "$A_SELFIE")
  expect "$name: tampered card -> invalid_signature" "$(jq -r '.checks.card_data.result' "$body")" invalid_signature
  local s1 s2; s1=$(session enrollment); s2=$(session enrollment)
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s2")" "$(card "$A" "$s1")" "$A_SELFIE")
  expect "$name: replayed signature -> rejected" "$(jq -r '.status + " " + .checks.card_present.result' "$body")" "rejected invalid_signature"

  # 5. responder down -> 503, nothing stored, the session still usable
  local before; before=$(count_enrollments)
  kill "$OCSP_PID"; wait "$OCSP_PID" 2>/dev/null
  s=$(session enrollment); local cardfile; cardfile=$(card "$A" "$s")
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$cardfile" "$A_SELFIE")
  expect "$name: responder down -> 503 revocation_unavailable" "$code $(jq -r .code "$body")" "503 revocation_unavailable"
  expect "$name: nothing stored while the responder is down" "$(count_enrollments)" "$before"
  start_responder
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$cardfile" "$A_SELFIE")
  expect "$name: the same session succeeds once it is back" "$code $(jq -r .status "$body")" "201 verified"

  # 6. transaction-time verification
  s=$(session transaction "$enr"); tokens+=("$(jq -r .client_token <<<"$s")")
  read -r code body < <(verify "$(jq -r .client_token <<<"$s")" "$A_LATER")
  expect "$name: transaction verify, same person -> match" "$code $(jq -r .decision "$body")" "200 match"
  read -r code body < <(verify "$key" "$B_SELFIE" "$enr")
  expect "$name: transaction verify, someone else -> no_match" "$(jq -r .decision "$body")" no_match
  verify "$key" "$B_SELFIE" "$enr" >/dev/null; verify "$key" "$B_SELFIE" "$enr" >/dev/null
  read -r code body < <(verify "$key" "$A_LATER" "$enr")
  expect "$name: lockout after 3 non-matches -> 423" "$code $(jq -r .code "$body")" "423 enrollment_locked"

  # 7. status check after revocation (現況確認)
  s=$(session enrollment)
  read -r code body < <(enroll "$(jq -r .client_token <<<"$s")" "$(card "$sc_person" "$s")" "$A_SELFIE")
  local sc_enr; sc_enr=$(jq -r .id "$body")
  "$BIN" dev card revoke "$CA" "$sc_person" --reason affiliationChanged >/dev/null
  nudge_responder "$sc_person"
  r=$(curl -s -X POST "$base/v1/enrollments/$sc_enr/status-check" "${H[@]}")
  expect "$name: status-check after revocation -> identity_changed" "$(jq -r '.status + " " + .revocation.reason' <<<"$r")" "identity_changed affiliationChanged"
  read -r code body < <(verify "$key" "$A_LATER" "$sc_enr")
  expect "$name: verify on an identity_changed enrollment -> 409" "$code $(jq -r .code "$body")" "409 enrollment_inactive"

  # 8. delete -> later calls 404
  code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base/v1/enrollments/$enr" "${H[@]}")
  expect "$name: delete -> 204" "$code" 204
  read -r code body < <(verify "$key" "$A_LATER" "$enr")
  expect "$name: verify after delete -> 404" "$code $(jq -r .code "$body")" "404 not_found"

  # 9. liveness: a tenant with the pose-sequence challenge; frames in the prompted order
  local lkey lH ls prompts frames=()
  lkey=$("$BIN" tenant create --name "e2e-live-$name" --liveness pose_sequence --json | jq -r .api_key)
  for _ in $(seq 1 300); do
    ls=$(curl -s -X POST "$base/v1/sessions" -H "authorization: Bearer $lkey" -H 'content-type: application/json' -d '{"purpose":"enrollment"}')
    prompts=$(jq -r '.liveness.prompts|join(",")' <<<"$ls")
    # Photos exist for a left turn and a frontal face.
    [ "$prompts" = "face_left,face_front" ] || [ "$prompts" = "face_front,face_left" ] && break
  done
  frames=()
  for p in ${prompts//,/ }; do
    if [ "$p" = face_left ]; then frames+=(-F "liveness_frame=@$A_TURNED;type=image/jpeg"); else frames+=(-F "liveness_frame=@$A_LATER;type=image/jpeg"); fi
  done
  code=$(curl -s -o "$WORK/live.json" -w '%{http_code}' -X POST "$base/v1/enrollments" -H "authorization: Bearer $(jq -r .client_token <<<"$ls")" \
    -F "card=@$(card "$A" "$ls");type=application/json" -F "selfie=@$A_SELFIE;type=image/jpeg" "${frames[@]}")
  expect "$name: liveness frames in the prompted order ($prompts) pass" "$code $(jq -r '.checks.liveness.result + " " + .status' "$WORK/live.json")" "201 pass verified"
  ls=$(curl -s -X POST "$base/v1/sessions" -H "authorization: Bearer $lkey" -H 'content-type: application/json' -d '{"purpose":"enrollment"}')
  code=$(curl -s -o "$WORK/live.json" -w '%{http_code}' -X POST "$base/v1/enrollments" -H "authorization: Bearer $(jq -r .client_token <<<"$ls")" \
    -F "card=@$(card "$A" "$ls");type=application/json" -F "selfie=@$A_SELFIE;type=image/jpeg")
  expect "$name: no liveness frames -> rejected liveness_failed" "$code $(jq -r '.reasons|join(",")' "$WORK/live.json")" "201 liveness_failed"

  # 10. privacy: neither the database nor the logs hold personal data, card data or tokens
  kill -TERM "$server"; wait "$server" 2>/dev/null
  local dump="$WORK/$name.dump"
  if [ "$name" = sqlite ]; then sqlite3 "${db_url#sqlite://}" .dump >"$dump"
  else pg_dump --data-only "$db_url" >"$dump"; fi
  local cert_b64 hojo_b64; s=$(session_unused=1; echo '{"id":"ses_x","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}')
  cert_b64=$(jq -r .jpki.signing_certificate "$(card "$A" "$s")" | cut -c1-64)
  hojo_b64=$(jq -r .hojo.integrity "$(card "$A" "$s")" | cut -c1-40)
  local leaks=()
  for needle in "山田" "霞が関" "1990-01-02" "19900102" "$cert_b64" "$hojo_b64" "${tokens[@]}" "$key" \
                "$(printf '山田' | od -An -tx1 | tr -d ' \n')"; do
    grep -qF -- "$needle" "$dump" "$log" && leaks+=("$needle")
  done
  expect "$name: no personal data, certificate, DF31 or token in the database or logs" "${#leaks[@]}" 0
  [ "${#leaks[@]}" -eq 0 ] || echo "#   leaked: ${leaks[*]}"
  unset JPKI_FACE__DATABASE__URL
}

run_backend sqlite "sqlite://$WORK/e2e.db" "$SC_SQLITE"
PG_DB=jpki_e2e_$$_$RANDOM
psql -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null || die "cannot create a PostgreSQL database"
run_backend postgres "${PG_ADMIN%/*}/$PG_DB" "$SC_POSTGRES"
psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1

echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
