#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests use is reachable (default 127.0.0.1:5432, user postgres).
# Starts the local cluster if it is installed and down; installs it from Debian's packages if it
# is missing and we are root; fails loudly otherwise. Never stops or reconfigures a running server.
set -euo pipefail
host=${PGHOST_TEST:-127.0.0.1}
port=${PGPORT_TEST:-5432}

ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null || (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if ready; then exit 0; fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure-postgres: installing PostgreSQL from the Debian packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "ensure-postgres: PostgreSQL is not reachable at $host:$port and not installed here." >&2
    echo "  Start one (trust auth for user postgres), or set JPKI_FACE_TEST_PG=postgres://USER@HOST:PORT/postgres" >&2
    exit 1
  fi
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
echo "ensure-postgres: starting cluster $version/main" >&2
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do
  if ready; then exit 0; fi
  sleep 1
done
echo "ensure-postgres: PostgreSQL did not come up at $host:$port" >&2
exit 1
