package testnode

// postgresEntrypoint is the PostgreSQL stand-in's
// /usr/local/bin/docker-entrypoint.sh, written for lab after the official
// image's documented contract (not a copy of its script):
//
//   - POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is required for an empty
//     PGDATA; POSTGRES_USER (default postgres) becomes the bootstrap
//     superuser with that password, POSTGRES_DB (default: the user) a
//     database it owns; POSTGRES_INITDB_ARGS go to initdb.
//   - initdb: UTF8, scram-sha-256 over TCP, trust over the Unix socket;
//     listen_addresses = '*' and `host all all all scram-sha-256`.
//   - Started as root, it gives PGDATA and the socket directory to postgres
//     (999:999) and runs itself again as postgres with setpriv (util-linux,
//     in every Debian minbase), where the official image uses gosu.
//   - postgres is exec'd: it is PID 1 and gets the stop signal itself.
//
// PGDATA has to belong to the user PostgreSQL runs as (initdb and postgres
// refuse anything else), so the root of a volume that belongs to root
// (Kubernetes with fsGroup, ext4's lost+found) cannot be PGDATA when the
// container starts as 999: the script then says so and stops, and the fix is
// the official image's advice, PGDATA in a subdirectory of the volume
// (/var/lib/postgresql/data/pgdata), which it creates. It does not move
// PGDATA by itself: a silent subdirectory would hide the data from anyone who
// looks at the volume by the documented path.
const postgresEntrypoint = `#!/bin/sh
# lab's test-only stand-in for the official postgres image's entrypoint
# (internal/testnode/postgres.go says what it does and why).
set -eu

# As in the official image: options alone are options of postgres.
if [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
	exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	find "$PGDATA" ! -user postgres -exec chown postgres:postgres {} +
	chown postgres:postgres /var/run/postgresql
	chmod 03775 /var/run/postgresql
	HOME=/var/lib/postgresql
	export HOME
	exec setpriv --reuid=999 --regid=999 --init-groups -- "$0" "$@"
fi

fail() {
	echo "docker-entrypoint.sh: $*" >&2
	exit 1
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
		POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
	fi
	[ -n "${POSTGRES_PASSWORD:-}" ] ||
		fail "PGDATA $PGDATA holds no database and POSTGRES_PASSWORD is not set: set it (or POSTGRES_PASSWORD_FILE) to the superuser's password"
	: "${POSTGRES_USER:=postgres}"
	: "${POSTGRES_DB:=$POSTGRES_USER}"

	mkdir -p "$PGDATA" 2>/dev/null ||
		fail "cannot create PGDATA $PGDATA as uid $(id -u): give its parent to uid $(id -u), or set PGDATA to a directory it may create"
	owner=$(stat -c %u "$PGDATA")
	[ "$owner" = "$(id -u)" ] ||
		fail "PGDATA $PGDATA belongs to uid $owner, not to uid $(id -u) that PostgreSQL runs as; when it is the root of a volume, set PGDATA to a subdirectory of it, e.g. PGDATA=$PGDATA/pgdata"
	chmod 0700 "$PGDATA"

	# POSTGRES_INITDB_ARGS are words for initdb: unquoted on purpose.
	printf '%s\n' "$POSTGRES_PASSWORD" |
		initdb --username="$POSTGRES_USER" --pwfile=/dev/stdin --encoding=UTF8 \
			--auth-host=scram-sha-256 --auth-local=trust ${POSTGRES_INITDB_ARGS:-}
	printf '\n# lab: clients from anywhere, with a password\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	printf "\n# lab: as the official image\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

	if [ "$POSTGRES_DB" != postgres ]; then
		# A server on the Unix socket only, for as long as it takes.
		pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -t 60 start
		printf 'CREATE DATABASE :"db";\n' |
			psql -X -q -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres --set=db="$POSTGRES_DB"
		pg_ctl -D "$PGDATA" -m fast -w stop
	fi
	echo "docker-entrypoint.sh: initialized $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
fi

exec "$@"
`
