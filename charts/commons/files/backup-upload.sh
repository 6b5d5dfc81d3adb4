#!/bin/sh
# Uploads the dump set of this run to S3 with the MinIO client (mcli, or mc), then applies
# the retention. Needs /bin/sh, the client, cat and a date that takes -d @SECONDS (GNU, BusyBox).
#   BUCKET/PREFIX/STAMP/DATABASE.dump   one object per dump (STAMP: UTC, YYYYmmddTHHMMSSZ)
#   BUCKET/PREFIX/STAMP/.complete       written last: a set without it was cut short
# Retention goes by the STAMP in the key, not by object dates (a copied or re-uploaded object
# keeps its age): after a successful upload, every PREFIX/STAMP/ set older than RETENTION_DAYS
# days is removed. Keys under PREFIX that are not a STAMP/ are never touched.
# Env: S3_ENDPOINT, S3_REGION, S3_ADDRESSING (path|virtual), BACKUP_BUCKET, BACKUP_PREFIX,
# RETENTION_DAYS, BACKUP_DIR (default /backup), S3_CREDENTIALS_DIR (default /secrets/s3: files
# accessKey and secretKey, handed to the client on stdin, never on a command line).
# Exit: 0 uploaded and pruned; 1 nothing to upload, upload or retention failed; 2 misconfigured.
set -eu
root="${BACKUP_DIR:-/backup}"
creds="${S3_CREDENTIALS_DIR:-/secrets/s3}"
prefix="${BACKUP_PREFIX%/}"
stamp_glob='[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z'

mc="$(command -v mcli || command -v mc || true)"
if [ -z "$mc" ]; then
  echo "backup: the S3 client image has neither mcli nor mc" >&2
  exit 2
fi
case "${RETENTION_DAYS:-}" in
  ''|*[!0-9]*|0)
    echo "backup: RETENTION_DAYS=\"${RETENTION_DAYS:-}\" is not a whole number of days >= 1" >&2
    exit 2 ;;
esac
if [ ! -r "$creds/accessKey" ] || [ ! -r "$creds/secretKey" ]; then
  echo "backup: S3 credentials not readable: $creds/accessKey and $creds/secretKey" >&2
  exit 2
fi

# The set the dump step wrote: exactly one STAMP directory, with its .complete marker.
stamp=""
for d in "$root"/*/; do
  [ -d "$d" ] || continue
  d="${d%/}"
  if [ -n "$stamp" ]; then
    echo "backup: more than one dump set in $root ($stamp, ${d##*/}): nothing uploaded" >&2
    exit 1
  fi
  stamp="${d##*/}"
done
# shellcheck disable=SC2254 # stamp_glob is a pattern
case "$stamp" in
  $stamp_glob) ;;
  *) echo "backup: no dump set named YYYYmmddTHHMMSSZ in $root: nothing uploaded" >&2
     exit 1 ;;
esac
if [ ! -f "$root/$stamp/.complete" ]; then
  echo "backup: dump set $stamp is incomplete (no .complete): nothing uploaded" >&2
  exit 1
fi

# The secret key stays out of argv and out of the log: mc echoes a key it finds malformed.
access_key="$(cat "$creds/accessKey")"
secret_key="$(cat "$creds/secretKey")"
path=off
[ "$S3_ADDRESSING" = path ] && path=on
if ! err="$(printf '%s\n%s\n' "$access_key" "$secret_key" |
            "$mc" alias set backup "$S3_ENDPOINT" --api S3v4 --path "$path" 2>&1 >/dev/null)"; then
  case "$err" in
    *"$secret_key"*) echo "backup: cannot use the S3 credentials for $S3_ENDPOINT (the client's message is withheld: it contains the secret key)" >&2 ;;
    *) echo "backup: cannot use the S3 credentials for $S3_ENDPOINT: $err" >&2 ;;
  esac
  exit 2
fi
unset secret_key

dest="backup/$BACKUP_BUCKET/$prefix"
# Create the bucket only when it cannot be listed: a key limited to an existing bucket
# (list/get/put/delete) has no s3:CreateBucket, which `mb --ignore-existing` needs.
if ! "$mc" ls "$dest/" >/dev/null 2>&1; then
  "$mc" mb --ignore-existing --region "$S3_REGION" "backup/$BACKUP_BUCKET" >/dev/null
fi
count=0
for f in "$root/$stamp"/*.dump; do
  [ -f "$f" ] || continue
  "$mc" cp "$f" "$dest/$stamp/${f##*/}"
  count=$((count + 1))
done
"$mc" cp "$root/$stamp/.complete" "$dest/$stamp/.complete"
echo "backup: uploaded $count dump(s) to $BACKUP_BUCKET/$prefix/$stamp/" >&2

# Retention: remove the sets whose STAMP is older than RETENTION_DAYS days (compared as
# YYYYmmddHHMMSS integers), never the one just uploaded.
cutoff="$(date -u -d "@$(( $(date -u +%s) - RETENTION_DAYS * 86400 ))" +%Y%m%d%H%M%S)"
if ! listing="$("$mc" ls --json "$dest/")"; then
  echo "backup: retention: cannot list $BACKUP_BUCKET/$prefix/ (the new dumps are uploaded)" >&2
  exit 1
fi
old=""
while IFS= read -r line; do  # one JSON object a line; a key must match stamp_glob
  case "$line" in *'"key":"'*) ;; *) continue ;; esac
  key="${line#*\"key\":\"}"
  key="${key%%\"*}"
  key="${key%/}"
  # shellcheck disable=SC2254
  case "$key" in $stamp_glob) ;; *) continue ;; esac
  n="${key%Z}"
  n="${n%T*}${n#*T}"
  if [ "$key" != "$stamp" ] && [ "$n" -lt "$cutoff" ]; then
    old="$old $key"
  fi
done <<EOF
$listing
EOF
removed=0
for key in $old; do
  if ! "$mc" rm --recursive --force "$dest/$key/" >/dev/null; then
    echo "backup: retention: cannot remove $BACKUP_BUCKET/$prefix/$key/ (the new dumps are uploaded)" >&2
    exit 1
  fi
  echo "backup: retention: removed $BACKUP_BUCKET/$prefix/$key/ (older than $RETENTION_DAYS days)" >&2
  removed=$((removed + 1))
done
echo "backup: retention: $removed set(s) older than $RETENTION_DAYS days removed" >&2
