#!/usr/bin/env bash
# Start a local PostgreSQL for the tune tests (idempotent) and print its URL on the last line.
#
#   url=$(.ci/setup-postgres.sh | tail -1); export TRAINLAB_TEST_POSTGRES_URL=$url
#
# Installs Debian's postgresql package when missing (as root), starts the cluster
# (root: pg_ctlcluster, which runs the server as the postgres user; otherwise a
# private cluster under ${TRAINLAB_PG_DIR:-/tmp/trainlab-pg} run as this user),
# creates the user and database below, exports nothing.
set -euo pipefail

DB_USER=${TRAINLAB_PG_USER:-trainlab}
DB_PASSWORD=${TRAINLAB_PG_PASSWORD:-trainlab}
DB_NAME=${TRAINLAB_PG_DB:-trainlab_test}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(pg_bin)" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-postgres: PostgreSQL is not installed and this is not root (apt-get install postgresql)" >&2
    exit 1
  fi
  echo "setup-postgres: installing postgresql" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
BIN=$(pg_bin)
VERSION=$(basename "$(dirname "$BIN")")

if [ "$(id -u)" -eq 0 ]; then
  if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$VERSION" main >&2
  fi
  if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$VERSION" main start >&2
  fi
  PORT=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')
  as_admin() { runuser -u postgres -- "$@"; }
  HOST_ARGS=(-p "$PORT")
else
  DIR=${TRAINLAB_PG_DIR:-/tmp/trainlab-pg}
  PORT=${TRAINLAB_PG_PORT:-55432}
  if [ ! -f "$DIR/PG_VERSION" ]; then
    "$BIN/initdb" -D "$DIR" -U postgres --auth=trust >&2
  fi
  if ! "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -o "-p $PORT -k $DIR -c listen_addresses=localhost" -w start >&2
  fi
  as_admin() { "$@"; }
  HOST_ARGS=(-h "$DIR" -p "$PORT" -U postgres)
fi

for _ in $(seq 30); do  # the server accepts connections a moment after it starts
  if as_admin psql "${HOST_ARGS[@]}" -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then break; fi
  sleep 1
done
if [ "$(as_admin psql "${HOST_ARGS[@]}" -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'")" != "1" ]; then
  as_admin psql "${HOST_ARGS[@]}" -d postgres -qc "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'" >&2
fi
if [ "$(as_admin psql "${HOST_ARGS[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'")" != "1" ]; then
  as_admin psql "${HOST_ARGS[@]}" -d postgres -qc "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
fi
echo "postgresql://$DB_USER:$DB_PASSWORD@localhost:$PORT/$DB_NAME"
