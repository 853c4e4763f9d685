#!/usr/bin/env bash
# The console's page times with a million enrollments in PostgreSQL (issue 22's target: every page
# ≤ 200 ms p99). Generates the data set straight into a fresh database with SQL (generate_series),
# starts the service on it, logs in as an admin (TOTP by oathtool) and times each page with curl,
# N requests per page, one after another; prints a Markdown table of p50/p99 (docs/performance.md).
#
#   scripts/console-bench.sh            # 1,000,000 enrollments, 200 requests per page
#   ROWS=100000 N=50 scripts/console-bench.sh
#
# Needs: a release or debug build (BIN, default target/release/jpki-face), PostgreSQL on
# 127.0.0.1:5432 (scripts/ensure-postgres.sh), oathtool and curl (scripts/ensure-tools.sh), the models.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
N=${N:-200}
BIN=${BIN:-target/release/jpki-face}
DB=${DB:-jpki_console_bench}
PORT=${PORT:-18090}
ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
URL=${ADMIN_URL%/*}/$DB
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export JPKI_FACE__DATABASE__URL=$URL
export JPKI_FACE__LOG__FILTER=warn
export JPKI_FACE__CRYPTO__DEV_KEY_FILE=$work/kek.b64
export JPKI_FACE__WEBHOOKS__WORKER_ENABLED=false
export JPKI_FACE__STATUS_CHECKS__ENABLED=false
export JPKI_FACE__RETENTION__ENABLED=false

psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
"$BIN" migrate >/dev/null
tenant=$("$BIN" tenant create --name bench --json | sed -n 's/.*"tenant_id":"\([^"]*\)".*/\1/p')
password="console bench password"
secret=$(printf '%s\n' "$password" | "$BIN" operator create --tenant "$tenant" --login admin --role admin |
  awk -F'\t' '$1 == "totp_secret" { print $2 }')

echo "generating $ROWS enrollments for $tenant …" >&2
start=$(date +%s)
psql -q "$URL" -v ON_ERROR_STOP=1 -v tenant="$tenant" -v rows="$ROWS" <<'SQL'
-- Bulk load: the console's triggers are off while loading; their side tables are filled set-wise below,
-- exactly as the triggers would have.
ALTER TABLE enrollments DISABLE TRIGGER USER;
INSERT INTO sessions (id, tenant_id, purpose, client_token_hash, nonce, created_at, expires_at, consumed_at)
SELECT 'ses_' || lpad(to_hex(g), 32, '0'), :'tenant', 'enrollment',
       decode(md5('t' || g) || md5('u' || g), 'hex'), decode(md5('n' || g), 'hex'),
       t, t + 600000, t + 1000
FROM generate_series(1, :rows) AS g,
     LATERAL (SELECT (extract(epoch FROM now()) * 1000)::bigint - (g::bigint * 2592000000 / :rows) AS t) AS ts;
INSERT INTO enrollments (id, tenant_id, session_id, subject_ref, status, document, created_at, updated_at)
SELECT 'enr_' || lpad(to_hex(g), 32, '0'), :'tenant', 'ses_' || lpad(to_hex(g), 32, '0'),
       'customer-' || g,
       CASE WHEN r < 0.70 THEN 'verified' WHEN r < 0.95 THEN 'rejected' ELSE 'in_review' END,
       replace(replace(
         '{"schema":2,"reasons":REASONS,"checks":{"card_data":{"result":"valid","issuer_key_id":"9000023/001"},"card_present":{"result":"valid"},"certificate":{"result":"valid","serial":null,"issuer":null,"not_after":null},"revocation":{"result":"good","method":"ocsp","checked_at":"2026-12-01T10:00:00.000Z","reason":null,"revoked_at":null,"responder":"http://127.0.0.1:8888"},"consistency":{"result":"match","mismatched":[]},"hojo":null,"hojo_binding":null,"selfie_quality":null,"chip_photo_quality":null,"liveness":{"result":"skipped","kind":"off"},"face_match":{"result":"match","score":SCORE,"threshold":0.5,"target_fmr":0.0001,"model":"sface@bench"}}}',
         'REASONS', CASE WHEN r < 0.70 THEN '[]' WHEN r < 0.90 THEN '["face_mismatch"]'
                         WHEN r < 0.95 THEN '["certificate_revoked"]' ELSE '["face_mismatch"]' END),
         'SCORE', round((CASE WHEN r < 0.70 THEN 0.55 + random() * 0.4 ELSE random() * 0.6 END)::numeric, 4)::text),
       t, t
FROM generate_series(1, :rows) AS g,
     LATERAL (SELECT random() + 0 * g AS r) AS rr, -- correlated: one draw per row
     LATERAL (SELECT (extract(epoch FROM now()) * 1000)::bigint - (g::bigint * 2592000000 / :rows) AS t) AS ts;
ALTER TABLE enrollments ENABLE TRIGGER USER;
INSERT INTO enrollment_reasons (tenant_id, enrollment_id, reason, created_at)
SELECT e.tenant_id, e.id, r, e.created_at
FROM enrollments e, jsonb_array_elements_text(e.document::jsonb -> 'reasons') AS r
ON CONFLICT DO NOTHING;
INSERT INTO enrollment_daily (tenant_id, day, status, n)
SELECT tenant_id, created_at / 86400000, status, COUNT(*) FROM enrollments
GROUP BY tenant_id, created_at / 86400000, status
ON CONFLICT (tenant_id, day, status) DO UPDATE SET n = EXCLUDED.n;
ANALYZE;
SQL
echo "loaded in $(( $(date +%s) - start )) s" >&2

"$BIN" serve --bind "127.0.0.1:$PORT" >"$work/serve.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$PORT"
for _ in $(seq 1 600); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done

jar=$work/cookies
curl -s -c "$jar" "$base/console/login" >"$work/login.html"
csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' "$work/login.html" | head -n 1)
code=$(oathtool --totp -b "$secret")
status=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" "$base/console/login" \
  --data-urlencode "csrf=$csrf" --data-urlencode "tenant=$tenant" --data-urlencode "login=admin" \
  --data-urlencode "password=$password" --data-urlencode "totp=$code")
[ "$status" = 303 ] || { echo "login failed ($status)" >&2; exit 1; }

first=$(curl -s -b "$jar" "$base/console/enrollments")
next=$(printf '%s' "$first" | sed -n 's/.*id="next-page" href="\([^"]*\)".*/\1/p' | head -n 1 | sed 's/&amp;/\&/g')
one=$(printf '%s' "$first" | sed -n 's/.*data-id="\(enr_[0-9a-f]*\)".*/\1/p' | head -n 1)
today=$(date -u +%Y-%m-%d)
week_ago=$(date -u -d '7 days ago' +%Y-%m-%d)

pages=(
  "/console/"
  "/console/?days=30"
  "/console/enrollments"
  "$next"
  "/console/enrollments?status=rejected"
  "/console/enrollments?reason=certificate_revoked"
  "/console/enrollments?status=in_review&reason=face_mismatch"
  "/console/enrollments?from=$week_ago&to=$today"
  "/console/enrollments/$one"
  "/console/reviews"
  "/console/webhooks"
  "/console/keys"
  "/console/settings"
  "/console/operators"
)
echo
echo "| page | enrollment rows listed | p50 ms | p99 ms | max ms |"
echo "|---|---:|---:|---:|---:|"
for p in "${pages[@]}"; do
  shown_rows=$(curl -s -b "$jar" "$base$p" | { grep -o 'data-id="enr_' || true; } | wc -l)
  for _ in $(seq 1 "$N"); do
    curl -s -o /dev/null -b "$jar" -w '%{http_code} %{time_total}\n' "$base$p"
  done >"$work/times"
  if grep -qv '^200 ' "$work/times"; then echo "$p: a request did not answer 200" >&2; exit 1; fi
  awk '{ print $2 * 1000 }' "$work/times" | sort -n >"$work/sorted"
  p50=$(awk -v n="$N" 'NR == int(n * 0.50 + 0.5) { printf "%.1f", $1 }' "$work/sorted")
  p99=$(awk -v n="$N" 'NR == int(n * 0.99 + 0.5) { printf "%.1f", $1 }' "$work/sorted")
  max=$(tail -n 1 "$work/sorted" | awk '{ printf "%.1f", $1 }')
  shown=${p//$one/{id\}}
  shown=${shown//$tenant/}
  case "$p" in *after=*) shown="/console/enrollments (page 2)";; esac
  echo "| \`$shown\` | $shown_rows | $p50 | $p99 | $max |"
done
