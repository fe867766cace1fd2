#!/usr/bin/env bash
# Install (Debian packages) and start a PostgreSQL server on loopback for the tests; print its URL.
# Usage: eval "$(.ci/postgres.sh)"   → exports POLICY_SERVER_TEST_POSTGRES_URL
set -euo pipefail
log() { echo "[postgres] $*" >&2; }
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -x "$version main" >/dev/null; then
  log "creating cluster $version/main"
  pg_createcluster "$version" main >&2
fi
status=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}')
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
if [ "$status" != "online" ]; then
  log "starting cluster $version/main on port $port"
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 30); do
  runuser -u postgres -- pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 -d postgres >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'policy_server') THEN
    CREATE ROLE policy_server LOGIN CREATEDB PASSWORD 'policy_server';
  END IF;
END $$;
-- The tests drop their databases WITH (FORCE); an autovacuum worker still in one of them runs as no
-- role, and only pg_signal_backend members may terminate it.
GRANT pg_signal_backend TO policy_server;
SQL
if ! runuser -u postgres -- psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname='policy_server'" | grep 1 >/dev/null; then
  runuser -u postgres -- createdb -p "$port" -O policy_server policy_server >&2
fi
echo "export POLICY_SERVER_TEST_POSTGRES_URL=postgresql+asyncpg://policy_server:policy_server@127.0.0.1:${port}/policy_server"
# How the fault-injection test stops and starts this server (it waits in between).
echo "export POLICY_SERVER_TEST_POSTGRES_STOP='pg_ctlcluster $version main stop --mode fast'"
echo "export POLICY_SERVER_TEST_POSTGRES_START='pg_ctlcluster $version main start'"
