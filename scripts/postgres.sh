#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for FlowFleet's tests and benchmarks, and prints its DSN:
#
#   export FLOWFLEET_TEST_POSTGRES=$(scripts/postgres.sh)   # start (or reuse) and print the DSN
#   scripts/postgres.sh stop                                # stop it and delete its files
#   scripts/postgres.sh status                              # print the DSN if it runs, else exit 1
#
# It installs nothing (scripts/setup.sh installs the postgresql package): it runs initdb and pg_ctl from
# /usr/lib/postgresql/<newest>/bin (or PG_BINDIR, or the PATH) on a cluster in a temporary directory,
# listening on 127.0.0.1 and a unix socket in that directory only, with trust authentication. As root
# the server runs as the postgres user (initdb refuses root); otherwise as the caller.
#
# The cluster favours speed over durability (fsync off) since it holds test data only; set
# FLOWFLEET_PG_FSYNC=on for benchmark figures that include real commits. FLOWFLEET_PG_STATE names the
# file that records the running cluster (default ${TMPDIR:-/tmp}/flowfleet-postgres.state), so that
# several clusters can run side by side. Everything but the DSN goes to stderr.
set -euo pipefail

state="${FLOWFLEET_PG_STATE:-${TMPDIR:-/tmp}/flowfleet-postgres.state}"
db=flowfleet

log() { echo "postgres.sh: $*" >&2; }

bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  log "no initdb found: install PostgreSQL (scripts/setup.sh) or set PG_BINDIR"
  exit 1
}

# as_owner runs a command as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

dsn_of() { echo "postgres://postgres@127.0.0.1:$1/$db?sslmode=disable"; }

running() {
  [ -f "$state" ] || return 1
  # shellcheck disable=SC1090
  . "$state"
  [ -n "${PGDIR:-}" ] && [ -d "$PGDIR/data" ] || return 1
  as_owner "$BIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1
}

stop() {
  if [ ! -f "$state" ]; then
    log "no cluster recorded in $state"
    return 0
  fi
  # shellcheck disable=SC1090
  . "$state"
  if [ -n "${PGDIR:-}" ] && [ -d "$PGDIR/data" ]; then
    as_owner "$BIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  case "${PGDIR:-}" in
  */flowfleet-pg.*) rm -rf "$PGDIR" ;;
  esac
  rm -f "$state"
  log "stopped"
}

start() {
  if running; then
    dsn_of "$PORT"
    return 0
  fi
  rm -f "$state"
  local bin dir port
  bin=$(bindir)
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    log "running as root needs a postgres user (the postgresql package makes one)"
    exit 1
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/flowfleet-pg.XXXXXX")
  chmod 755 "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  port=""
  for p in $(seq 54329 54429); do
    if port_free "$p"; then port=$p; break; fi
  done
  if [ -z "$port" ]; then
    log "no free port in 54329-54429"
    exit 1
  fi
  log "initdb in $dir ($bin)"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 -N --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 -N --no-locale >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  local fsync="${FLOWFLEET_PG_FSYNC:-off}"
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 256MB
fsync = $fsync
synchronous_commit = $fsync
full_page_writes = $fsync
log_min_messages = warning
EOF
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null; then
    cat "$dir/server.log" >&2
    exit 1
  fi
  printf 'PGDIR=%q\nBIN=%q\nPORT=%q\n' "$dir" "$bin" "$port" >"$state"
  as_owner "$bin/createdb" -h "$dir" -p "$port" -U postgres "$db"
  log "running on 127.0.0.1:$port (data $dir, fsync $fsync); stop with: $0 stop"
  dsn_of "$port"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status)
  if running; then dsn_of "$PORT"; else exit 1; fi
  ;;
*)
  echo "usage: $0 [start|stop|status]" >&2
  exit 2
  ;;
esac
