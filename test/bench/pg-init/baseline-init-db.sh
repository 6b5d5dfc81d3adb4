#!/usr/bin/env bash
# Baseline for the pg-init benchmark: provisions ONE module the way shell
# init scripts such as OpenG2P's postgres-init init-db.sh do it: one psql
# process per statement, existence checked with one psql listing of the
# databases (the scripts use `psql -lqt`, whose query only a client of the
# server's major can run: here a plain SELECT, same cost) and a pg_roles lookup, SQL built by string interpolation, the password reset on
# every run. Written for the benchmark from the behaviour described in
# issue 3; it is NOT safe (a quote in a name or password breaks it).
# Usage: baseline-init-db.sh DB USER PASSWORD EXTENSION   (libpq env: PGHOST, PGPORT, PGUSER, PGPASSWORD)
set -eu
db=$1 user=$2 password=$3 extension=$4
export PGDATABASE=postgres

if ! psql -tAc "SELECT datname FROM pg_database" | grep -qx "$db"; then
  if [ "$(psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='$user'")" != "1" ]; then
    psql -q -c "CREATE ROLE $user WITH LOGIN NOSUPERUSER INHERIT CONNECTION LIMIT -1 PASSWORD '$password'"
  fi
  psql -q -c "CREATE DATABASE $db"
  psql -q -c "GRANT ALL PRIVILEGES ON DATABASE $db TO $user"
  psql -q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS $extension"
fi
psql -q -c "ALTER ROLE $user WITH PASSWORD '$password'"
psql -q -c "GRANT ALL PRIVILEGES ON DATABASE $db TO $user"
