#!/usr/bin/env bash
# tinbao-backup.sh: back up tinbao's PostgreSQL database, or restore a backup.
#
#   tinbao-backup.sh                        write $BACKUP_DIR/tinbao-YYYYmmdd-HHMMSS.dump (UTC),
#                                           keep the newest $KEEP_DAILY of them, print its path
#   tinbao-backup.sh --restore FILE URL     restore FILE into the database URL (drops and
#                                           recreates the objects it contains)
#
# Which database: $BACKUP_DATABASE_URL, else $TINBAO_DATABASE_URL (the app's own setting, so the
# systemd unit can read /etc/tinbao/tinbao.env), else the libpq PG* variables (PGHOST, PGUSER,
# PGDATABASE, ...). A URL may be the app's `postgresql+asyncpg://user:pw@host:port/db`: the
# `+asyncpg` is dropped. The URL is turned into PG* variables, never put on a command line, so
# the password does not show in `ps`.
#
# Settings: BACKUP_DIR (default /var/backups/tinbao), KEEP_DAILY (default 14).
# A dump is written under a temporary name and renamed once pg_dump has finished and the
# archive reads back, so a file with the final name is always a whole backup. Two runs never
# overlap (flock on $BACKUP_DIR/.lock). Any failure exits non-zero and leaves no new file.
# Dumps hold tip texts: they are created mode 0600 in a 0700 directory; encrypt copies you move
# off the server. The secret key is not in the dump: back up /etc/tinbao/tinbao.env separately.
set -euo pipefail

BACKUP_DIR=${BACKUP_DIR:-/var/backups/tinbao}
KEEP_DAILY=${KEEP_DAILY:-14}
PREFIX=tinbao-

die() {
    echo "tinbao-backup: $*" >&2
    exit 1
}

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# Export PG* variables for a database URL (postgresql://, postgres:// or postgresql+driver://).
# Python's URL parser handles percent-encoded passwords, IPv6 hosts and query options; the URL
# goes in through the environment, not argv.
use_url() {
    local url=$1 exports
    command -v python3 >/dev/null || die "python3 is needed to read a database URL"
    exports=$(TINBAO_BACKUP_URL=$url python3 - <<'PY'
import os
import shlex
import sys
from urllib.parse import parse_qs, unquote, urlsplit

url = os.environ["TINBAO_BACKUP_URL"]
parts = urlsplit(url)
scheme = parts.scheme.split("+", 1)[0]
if scheme not in ("postgresql", "postgres"):
    sys.exit(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
values = {
    "PGHOST": parts.hostname,
    "PGPORT": str(parts.port) if parts.port else None,
    "PGUSER": unquote(parts.username) if parts.username else None,
    "PGPASSWORD": unquote(parts.password) if parts.password else None,
    "PGDATABASE": unquote(parts.path.lstrip("/")) or None,
}
query = {key: items[-1] for key, items in parse_qs(parts.query).items()}
# asyncpg spells it ssl=..., libpq sslmode=...; host=/run/postgresql selects a socket directory.
ssl = query.get("sslmode") or query.get("ssl")
if ssl in ("true", "1"):
    ssl = "require"
values["PGSSLMODE"] = ssl
if "host" in query:
    values["PGHOST"] = query["host"]
if "port" in query:
    values["PGPORT"] = query["port"]
for key, value in values.items():
    if value:
        print(f"export {key}={shlex.quote(value)}")
PY
    ) || die "cannot read the database URL"
    eval "$exports"
}

select_source() {
    local url=${BACKUP_DATABASE_URL:-${TINBAO_DATABASE_URL:-}}
    if [[ -n $url ]]; then
        use_url "$url"
    fi
    [[ -n ${PGDATABASE:-} ]] || die "no database: set BACKUP_DATABASE_URL, TINBAO_DATABASE_URL or PGDATABASE"
}

backup() {
    [[ $KEEP_DAILY =~ ^[1-9][0-9]*$ ]] || die "KEEP_DAILY must be a positive whole number"
    command -v pg_dump >/dev/null || die "pg_dump not found (apt install postgresql-client-15)"
    select_source
    umask 077
    mkdir -p "$BACKUP_DIR"
    exec 9>"$BACKUP_DIR/.lock"
    flock -n 9 || die "another backup is running in $BACKUP_DIR"
    # A partial file left by a run that was killed (SIGKILL, power loss): the lock says no run
    # is writing now, so it is garbage.
    rm -f "$BACKUP_DIR"/."$PREFIX"*.partial

    local stamp final tmp
    stamp=$(date -u +%Y%m%d-%H%M%S)
    final="$BACKUP_DIR/$PREFIX$stamp.dump"
    tmp="$BACKUP_DIR/.$PREFIX$stamp.dump.partial"
    [[ ! -e $final ]] || die "$final exists already (one backup per second at most)"
    trap 'rm -f "$tmp"' EXIT
    pg_dump --format=custom --no-password --file="$tmp" || die "pg_dump failed for database ${PGDATABASE}"
    # The archive must read back before it replaces anything.
    pg_restore --list "$tmp" >/dev/null || die "the dump does not read back"
    sync "$tmp"
    mv "$tmp" "$final"
    trap - EXIT
    sync "$BACKUP_DIR"

    # Rotation: names sort by time; keep the newest KEEP_DAILY.
    local -a dumps
    mapfile -t dumps < <(find "$BACKUP_DIR" -maxdepth 1 -type f \
        -name "$PREFIX[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9].dump" \
        -printf '%f\n' | sort)
    local excess=$((${#dumps[@]} - KEEP_DAILY)) i
    for ((i = 0; i < excess; i++)); do
        rm -f -- "$BACKUP_DIR/${dumps[i]}"
    done
    echo "$final"
}

restore() {
    local file=$1 target=$2
    [[ -f $file ]] || die "no such backup: $file"
    command -v pg_restore >/dev/null || die "pg_restore not found (apt install postgresql-client-15)"
    pg_restore --list "$file" >/dev/null || die "$file is not a pg_dump custom-format archive"
    unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE
    use_url "$target"
    [[ -n ${PGDATABASE:-} ]] || die "the target URL names no database"
    # One transaction: a restore that fails half-way leaves the target as it was.
    pg_restore --clean --if-exists --no-owner --no-acl --exit-on-error --single-transaction \
        --no-password --dbname="$PGDATABASE" "$file" \
        || die "pg_restore into ${PGDATABASE} failed; the target is unchanged"
    echo "restored $file into database ${PGDATABASE}"
}

case "${1:-}" in
    "") backup ;;
    --restore)
        [[ $# -eq 3 ]] || usage
        restore "$2" "$3"
        ;;
    -h | --help) usage ;;
    *) usage ;;
esac
