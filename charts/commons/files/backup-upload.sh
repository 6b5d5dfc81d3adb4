#!/bin/sh
# Uploads the dumps of this run to S3 (mc or mcli), then removes objects under the
# prefix older than RETENTION_DAYS. Credentials are read from mounted files.
set -eu
root="${BACKUP_DIR:-/backup}"
mc="$(command -v mcli || command -v mc || true)"
if [ -z "$mc" ]; then
  echo "backup: the S3 client image has neither mcli nor mc" >&2
  exit 2
fi
stamp="$(ls "$root")"
if [ -z "$stamp" ] || [ ! -f "$root/$stamp/.complete" ]; then
  echo "backup: no complete dump set in $root: nothing uploaded" >&2
  exit 1
fi
rm -f "$root/$stamp/.complete"
path=off
[ "$S3_ADDRESSING" = path ] && path=on
"$mc" alias set backup "$S3_ENDPOINT" "$(cat /secrets/s3/accessKey)" "$(cat /secrets/s3/secretKey)" \
  --api S3v4 --path "$path" >/dev/null
"$mc" mb --ignore-existing --region "$S3_REGION" "backup/$BACKUP_BUCKET"
"$mc" cp --recursive "$root/$stamp/" "backup/$BACKUP_BUCKET/$BACKUP_PREFIX/$stamp/"
echo "backup: uploaded to $BACKUP_BUCKET/$BACKUP_PREFIX/$stamp/" >&2
"$mc" rm --recursive --force --older-than "${RETENTION_DAYS}d" "backup/$BACKUP_BUCKET/$BACKUP_PREFIX/" || {
  echo "backup: retention cleanup failed (the new dumps are uploaded)" >&2
  exit 1
}
