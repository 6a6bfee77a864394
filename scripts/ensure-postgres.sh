#!/usr/bin/env bash
# The PostgreSQL tests need a server at 127.0.0.1:5432 (trust auth, database "test").
# Start the machine's cluster when it is down; say so plainly when there is none to start.
set -uo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
fi
echo "PostgreSQL is not reachable at 127.0.0.1:5432; the tests marked 'postgres' will fail." >&2
