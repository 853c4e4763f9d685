#!/usr/bin/env bash
# Drops the throwaway databases earlier test runs left on the test PostgreSQL (jpki_test_*, jpki_e2e_*).
# Run before the tests start, never during a run.
set -euo pipefail
admin=${JPKI_FACE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
command -v psql >/dev/null || exit 0
psql -qAt "$admin" -c "SELECT datname FROM pg_database WHERE datname LIKE 'jpki\_test\_%' OR datname LIKE 'jpki\_e2e\_%'" |
  while read -r db; do psql -q "$admin" -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
