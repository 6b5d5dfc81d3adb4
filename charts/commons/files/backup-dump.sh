#!/bin/sh
# Dumps databases with pg_dump --format=custom into /backup/STAMP/DATABASE.dump.
# Connection: the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE).
# BACKUP_DATABASES: comma-separated names; empty dumps every database that accepts
# connections except postgres and the templates. Every database is tried; the exit
# status is non-zero if any dump failed, and /backup/STAMP/.complete is written only
# when all succeeded (the upload step refuses an incomplete set).
set -eu
root="${BACKUP_DIR:-/backup}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$root/$stamp"
mkdir -p "$out"
if [ -n "${BACKUP_DATABASES:-}" ]; then
  list="$(printf '%s\n' "$BACKUP_DATABASES" | tr ',' '\n')"
else
  list="$(PGDATABASE="${PGDATABASE:-postgres}" psql -X -A -t -v ON_ERROR_STOP=1 \
    -c "SELECT d.datname FROM pg_catalog.pg_database d WHERE d.datallowconn AND NOT d.datistemplate AND d.datname <> 'postgres' ORDER BY 1")"
fi
failed=0
count=0
for db in $list; do
  case "$db" in
    *[!A-Za-z0-9_.-]*|.*)
      echo "backup: skipping database \"$db\": name is not [A-Za-z0-9_.-] (dump it by hand)" >&2
      failed=1
      continue ;;
  esac
  echo "backup: dumping $db" >&2
  if PGDATABASE="$db" pg_dump --format=custom --no-password --file="$out/$db.dump.partial"; then
    mv "$out/$db.dump.partial" "$out/$db.dump"
    count=$((count + 1))
  else
    echo "backup: pg_dump of $db failed" >&2
    rm -f "$out/$db.dump.partial"
    failed=1
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "backup: $count database(s) dumped, at least one failed: nothing will be uploaded" >&2
  exit 1
fi
echo "$count" > "$out/.complete"
echo "backup: $count database(s) dumped into $out" >&2
