#!/usr/bin/env bash
# Entrypoint of the test image kommons/postgres (PostgreSQL 18's server from npm
# @embedded-postgres, Debian bookworm's psql and pg_isready 15, built by
# internal/testutil/nodeimages). It keeps the contract of the official
# `postgres` image that charts/commons relies on, written for this image:
#
#   - args: a first argument starting with "-" means `postgres ARGS...`;
#     `postgres ARGS...` initializes the cluster when needed, then execs the
#     server with ARGS (e.g. `-c key=value`); anything else is exec'd as is.
#   - env: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (read at first
#     initialization only; never printed, never passed to the server's
#     environment), POSTGRES_USER (default postgres), POSTGRES_DB (default
#     POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR,
#     POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), PGDATA, PGPORT.
#   - first initialization (PGDATA without PG_VERSION): initdb, then
#     listen_addresses = '*' and `host all all all METHOD` in pg_hba.conf,
#     then a temporary server on the Unix socket only creates POSTGRES_DB and
#     runs /docker-entrypoint-initdb.d/*.sql, *.sql.gz and *.sh, then stops.
#   - runs as uid 999 (the image's postgres user) on a read-only root
#     filesystem; started as root it prepares PGDATA and re-executes itself as
#     postgres (setpriv instead of the official image's gosu).
#
# One deliberate difference: the official image trusts TCP connections from
# 127.0.0.1 and ::1; here they authenticate with POSTGRES_HOST_AUTH_METHOD
# like every other host (Unix-socket connections are trusted in both).
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# file_value VAR [DEFAULT]: sets the shell variable VAR from $VAR or from the
# file named by $VAR_FILE (exclusive), else DEFAULT. VAR_FILE is unset so
# that the server never sees it.
file_value() {
	local var=$1 file_var="${1}_FILE" def=${2:-} val
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		die "both $var and $file_var are set (but are exclusive)"
	fi
	val=$def
	if [ -n "${!var:-}" ]; then
		val=${!var}
	elif [ -n "${!file_var:-}" ]; then
		[ -r "${!file_var}" ] || die "$file_var: ${!file_var} is not readable by uid $(id -u)"
		val=$(<"${!file_var}")
	fi
	unset "$file_var"
	printf -v "$var" '%s' "$val"
}

# want_help ARGS...: the server only prints something and exits.
want_help() {
	local arg
	for arg; do
		case "$arg" in
		-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

setup_env() {
	file_value POSTGRES_PASSWORD
	file_value POSTGRES_USER postgres
	file_value POSTGRES_DB "$POSTGRES_USER"
	file_value POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
	: "${PGDATA:?PGDATA must be set}"
	: "${PGPORT:=5432}"
	export PGDATA PGPORT
	# Initialization scripts (*.sh) see these, as with the official image;
	# the password stays a shell variable (sourced scripts can read it).
	export POSTGRES_USER POSTGRES_DB
}

# As root: own PGDATA and the socket directory, then run again as postgres.
become_postgres() {
	: "${PGDATA:?PGDATA must be set}"
	mkdir -p "$PGDATA" /var/run/postgresql
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	chown postgres:postgres /var/run/postgresql
	chmod 00700 "$PGDATA"
	chmod 03775 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
}

init_database_dir() {
	local -a extra=()
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		extra+=(--waldir "$POSTGRES_INITDB_WALDIR")
	fi
	# Word splitting with shell quoting, as the official image's eval does.
	eval "extra+=($POSTGRES_INITDB_ARGS)"
	# The password goes through a pipe (/dev/fd/N), never argv; initdb wants
	# a non-empty file, hence the newline.
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" "${extra[@]}"
	# The sockets where the official image (and Debian's clients) have them:
	# the npm build's default is /tmp.
	printf "\nlisten_addresses = '*'\nunix_socket_directories = '/var/run/postgresql'\n" >>"$PGDATA/postgresql.conf"
	{
		printf '\n'
		if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
			printf '# warning: trust is enabled for all connections\n'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"
}

psql_admin() {
	psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" --dbname "${1:-postgres}" "${@:2}"
}

# temp_server_start SERVER_ARGS...: the same settings, Unix socket only.
temp_server_start() {
	local opts
	opts=$(printf '%q ' "$@" -c "listen_addresses=" -p "$PGPORT")
	PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -o "$opts" -w start
}

temp_server_stop() {
	PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -m fast -w stop
}

create_db() {
	local exists
	[ "$POSTGRES_DB" != postgres ] || return 0
	exists=$(printf "SELECT 1 FROM pg_database WHERE datname = :'db';\n" | psql_admin postgres --tuples-only --no-align --set db="$POSTGRES_DB")
	if [ -z "$exists" ]; then
		printf 'CREATE DATABASE :"db";\n' | psql_admin postgres --set db="$POSTGRES_DB" >/dev/null
		log "created database $POSTGRES_DB"
	fi
}

run_init_files() {
	local f
	for f; do
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			log "running $f"
			psql_admin "$POSTGRES_DB" -f "$f"
			;;
		*.sql.gz)
			log "running $f"
			gzip -dc "$f" | psql_admin "$POSTGRES_DB"
			;;
		*) log "ignoring $f" ;;
		esac
	done
}

main() {
	[ $# -gt 0 ] || set -- postgres
	if [ "${1:0:1}" = - ]; then
		set -- postgres "$@"
	fi
	if [ "$1" != postgres ] || want_help "$@"; then
		exec "$@"
	fi
	# As root, before reading anything: the re-executed script reads the
	# environment again.
	if [ "$(id -u)" = 0 ]; then
		become_postgres "$@"
	fi
	setup_env
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	if [ -s "$PGDATA/PG_VERSION" ]; then
		log "PostgreSQL database directory $PGDATA contains a database; skipping initialization"
	else
		if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
			die "the database is uninitialized and no superuser password is given: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)"
		fi
		log "initializing $PGDATA for superuser $POSTGRES_USER"
		init_database_dir
		export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
		temp_server_start "${@:2}"
		create_db
		shopt -s nullglob
		run_init_files /docker-entrypoint-initdb.d/*
		shopt -u nullglob
		temp_server_stop
		unset PGPASSWORD
		log "initialization complete; starting the server"
	fi
	unset POSTGRES_PASSWORD
	exec "$@"
}

main "$@"
