#!/usr/bin/env bash
# The project's own Mosquitto, PostgreSQL and Redis, on the project's own ports.
#
#   scripts/stack.sh install                      install missing Debian packages
#   scripts/stack.sh up     [dev|test] [service…] install, then start (idempotent)
#   scripts/stack.sh down   [dev|test|all] [service…]
#   scripts/stack.sh status [dev|test]
#   scripts/stack.sh env    [dev|test]            print the URLs as shell variables
#   scripts/stack.sh info   [dev|test]            print how to reach each service
#
# Services: postgres, redis, mosquitto (all by default), and replica: a
# streaming replica of postgres made with pg_basebackup, on the next port
# (STACK_<INSTANCE>_PG_REPLICA_PORT), started only when named:
#   scripts/stack.sh up test replica
# Instances: "dev" (make run) and "test" (make test) use different ports and
# state folders, so both can run at once. State lives in .stack/<instance>/,
# which git ignores. Never the system defaults 1883/5432/6379.
#
# Works as root (PostgreSQL then runs as the 'postgres' OS user, since it
# refuses to run as root) and as an ordinary user (packages are then
# installed with sudo, if there is one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# prometheus (prometheus, promtool) and chromium are for the tests of the
# dashboards' rules and of the API's live view page.
PACKAGES=(mosquitto mosquitto-clients redis-server postgresql prometheus chromium)

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

ports_for() {
    case "$1" in
        dev)  MQTT_PORT=${STACK_DEV_MQTT_PORT:-11883}; PG_PORT=${STACK_DEV_PG_PORT:-15432}; REDIS_PORT=${STACK_DEV_REDIS_PORT:-16379}
              REPLICA_PORT=${STACK_DEV_PG_REPLICA_PORT:-$((PG_PORT + 1))} ;;
        test) MQTT_PORT=${STACK_TEST_MQTT_PORT:-21883}; PG_PORT=${STACK_TEST_PG_PORT:-25432}; REDIS_PORT=${STACK_TEST_REDIS_PORT:-26379}
              REPLICA_PORT=${STACK_TEST_PG_REPLICA_PORT:-$((PG_PORT + 1))} ;;
        *) die "unknown instance '$1' (use dev or test)" ;;
    esac
}

# ---------------------------------------------------------------- packages
missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

install_packages() {
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    [ -z "${missing// /}" ] && return 0
    command -v apt-get >/dev/null || die "missing packages: $missing; this script installs them only on Debian/Ubuntu (apt-get)"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing packages: $missing; install them as root: apt-get install -y $missing"
        sudo=(sudo)
    fi
    say "installing $missing (Debian packages)"
    # Package scripts may try to start the system-wide services on the default
    # ports; we never use those, so that is harmless either way.
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq || say "apt-get update failed; trying the install with the lists we have"
    # shellcheck disable=SC2086
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || die "apt-get install $missing failed; run it by hand to see why"
    # Debian's prometheus starts a system-wide server on :9090 where services
    # start on install. We only want its binaries (the tests run a Prometheus
    # of their own, on a free port), so stop that one and keep it off at boot.
    if [[ " $missing " == *" prometheus "* ]]; then
        if [ -d /run/systemd/system ]; then
            "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/prometheus ]; then
            "${sudo[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
            "${sudo[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
        fi
    fi
}

# ---------------------------------------------------------------- helpers
pg_bindir() {
    local v
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
    [ -n "$v" ] || die "no PostgreSQL server found in /usr/lib/postgresql; run: scripts/stack.sh install"
    echo "/usr/lib/postgresql/$v/bin"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_if_changed() {  # write_if_changed FILE < content
    local tmp; tmp=$(mktemp)
    cat >"$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; chmod 644 "$1"; fi
}

as_pg() {  # run a command as the OS user that owns the PostgreSQL cluster
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# PostgreSQL refuses to run as root. As root, the cluster belongs to the
# 'postgres' user, who must be able to reach its folder: when the checkout sits
# somewhere that user cannot enter, the cluster goes under /var/lib/postgresql.
pg_datadir() {
    local dir="$STATE/postgres"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "the 'postgres' OS user is missing; reinstall the postgresql package"
        if ! runuser -u postgres -- test -x "$STATE"; then
            local key; key=$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
            dir="/var/lib/postgresql/mqtt-bridge-$key-$INSTANCE"
        fi
    fi
    echo "$dir"
}

# The server log sits with the other logs, unless the cluster had to move out
# of the checkout; then it sits beside the cluster, linked from the logs folder.
pg_logfile() {
    local data=$1
    if [ "$data" = "$STATE/postgres" ]; then
        echo "$LOGS/postgres.log"
    else
        ln -sfn "$data.log" "$LOGS/postgres.log"
        echo "$data.log"
    fi
}

timescaledb_available() {
    local libdir
    libdir=$("$(pg_bindir)/pg_config" --pkglibdir 2>/dev/null) || return 1
    ls "$libdir"/timescaledb*.so >/dev/null 2>&1
}

# ---------------------------------------------------------------- postgres
postgres_up() {
    local bin data sock log
    bin=$(pg_bindir); data=$(pg_datadir); log=$(pg_logfile "$data")
    if [ ! -f "$data/PG_VERSION" ]; then
        say "postgres: creating a cluster in $data"
        mkdir -p "$data"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$data" && chmod 700 "$data"
        as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log" 2>&1 \
            || die "initdb failed; see $LOGS/initdb.log"
    fi
    local preload="" tuning=""
    if timescaledb_available; then
        # A scheduler per database takes a background worker slot; the tests
        # clone many databases, and with the default 8 slots a new one's jobs
        # could wait for a slot (a job test timed out that way).
        preload="shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_worker_processes = 32
timescaledb.max_background_workers = 24"
    fi
    if [ "$INSTANCE" = test ]; then
        # Test clusters are thrown away: trade crash safety for speed.
        tuning="fsync = off
synchronous_commit = off
full_page_writes = off"
    fi
    as_pg tee "$data/stack.conf" >/dev/null <<EOF
# Written by scripts/stack.sh; edits are overwritten.
port = $PG_PORT
listen_addresses = '127.0.0.1'
# TCP only: a socket path inside a deep checkout can exceed the 107-byte limit.
unix_socket_directories = ''
max_connections = 200
shared_buffers = '256MB'
max_wal_size = '2GB'
log_min_messages = warning
$preload
$tuning
EOF
    grep -q "include_if_exists = 'stack.conf'" "$data/postgresql.conf" \
        || echo "include_if_exists = 'stack.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
    # The project's own roles log in without a password on loopback (a local
    # stack); any other role needs one, so wrong credentials fail as they would
    # in production.
    as_pg tee "$data/pg_hba.conf" >/dev/null <<EOF
# Written by scripts/stack.sh; edits are overwritten.
host all postgres 127.0.0.1/32 trust
host all bridge   127.0.0.1/32 trust
host all all      127.0.0.1/32 scram-sha-256
host replication postgres 127.0.0.1/32 trust
EOF
    touch "$log"; if [ "$(id -u)" -eq 0 ]; then chown postgres: "$log"; fi
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$data" reload >/dev/null  # picks up pg_hba.conf; restarts nothing
        sleep 0.2  # the postmaster rereads its files asynchronously
        if [ "$(psql_super -d postgres -tAc "SELECT count(*) FROM pg_settings WHERE pending_restart")" != 0 ]; then
            # e.g. TimescaleDB was installed since: preloading it needs a restart.
            as_pg "$bin/pg_ctl" -D "$data" -l "$log" -m fast -w -t 60 restart >/dev/null \
                || die "postgres did not restart; see $log"
            say "postgres: settings changed; restarted on port $PG_PORT"
        else
            say "postgres: already running on port $PG_PORT"
        fi
    else
        port_open "$PG_PORT" && die "port $PG_PORT is taken by another program; set STACK_${INSTANCE^^}_PG_PORT"
        as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
            || die "postgres did not start; see $log"
        say "postgres: started on port $PG_PORT"
    fi
    pg_bootstrap
}

psql_super() { "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

# The dev instance gets a 'bridge' role owning a 'bridge' database; with
# TimescaleDB installed, the extension is created there by the superuser, as a
# DBA would, so the unprivileged role can use it.
pg_bootstrap() {
    [ "$INSTANCE" = dev ] || return 0
    psql_super -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'bridge'" | grep -q 1 \
        || psql_super -d postgres -c "CREATE ROLE bridge LOGIN CREATEDB"
    psql_super -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'bridge'" | grep -q 1 \
        || psql_super -d postgres -c "CREATE DATABASE bridge OWNER bridge"
    if timescaledb_available; then
        psql_super -d bridge -c "CREATE EXTENSION IF NOT EXISTS timescaledb" 2>/dev/null \
            || say "postgres: TimescaleDB is installed but could not be created; the schema will use plain PostgreSQL"
    fi
}

postgres_down() {
    local bin data; bin=$(pg_bindir 2>/dev/null) || return 0; data=$(pg_datadir)
    [ -f "$data/PG_VERSION" ] || return 0
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null && say "postgres: stopped"
    fi
}

# ---------------------------------------------------------------- replica
# A hot standby of the instance's PostgreSQL: pg_basebackup -R copies the
# primary (and writes the standby's primary_conninfo), then it streams WAL on
# its own port. The copied stack.conf names the primary's port; the command
# line's port wins.
replica_up() {
    local bin data rdata log
    bin=$(pg_bindir); data=$(pg_datadir); rdata="$STATE/postgres-replica"; log="$LOGS/postgres-replica.log"
    as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 || die "start postgres first: $0 up $INSTANCE postgres"
    if as_pg "$bin/pg_ctl" -D "$rdata" status >/dev/null 2>&1; then
        say "replica: already running on port $REPLICA_PORT"; return 0
    fi
    # A stopped copy is made again: without a replication slot the primary
    # may have recycled the WAL it needs to catch up ("requested WAL segment
    # has already been removed"), and a slot would make the primary keep WAL
    # for a replica that may never come back.
    port_open "$REPLICA_PORT" && die "port $REPLICA_PORT is taken by another program; set STACK_${INSTANCE^^}_PG_REPLICA_PORT"
    rm -rf "$rdata"
    mkdir -p "$rdata"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$rdata"
    chmod 700 "$rdata"
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$rdata" -R -X stream -c fast \
        >"$LOGS/pg_basebackup.log" 2>&1 || die "pg_basebackup failed; see $LOGS/pg_basebackup.log"
    say "replica: copied the primary into $rdata"
    touch "$log"; if [ "$(id -u)" -eq 0 ]; then chown postgres: "$log"; fi
    as_pg "$bin/pg_ctl" -D "$rdata" -l "$log" -o "-c port=$REPLICA_PORT -c hot_standby=on" -w -t 60 start >/dev/null \
        || die "the replica did not start; see $log"
    say "replica: streaming from port $PG_PORT, read-only on port $REPLICA_PORT"
}

replica_down() {
    local bin rdata; bin=$(pg_bindir 2>/dev/null) || return 0; rdata="$STATE/postgres-replica"
    [ -f "$rdata/PG_VERSION" ] || return 0
    if as_pg "$bin/pg_ctl" -D "$rdata" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$rdata" -m fast -w -t 60 stop >/dev/null && say "replica: stopped"
    fi
}

postgres_status() {
    local bin data; bin=$(pg_bindir); data=$(pg_datadir)
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        echo "postgres   running  port $PG_PORT  data $data"
    else
        echo "postgres   stopped"
    fi
}

# ---------------------------------------------------------------- redis
redis_up() {
    local dir="$STATE/redis"; mkdir -p "$dir"
    write_if_changed "$dir/redis.conf" <<EOF
# Written by scripts/stack.sh; edits are overwritten.
port $REDIS_PORT
bind 127.0.0.1
protected-mode yes
daemonize yes
dir $dir
pidfile $dir/redis.pid
logfile $LOGS/redis.log
# A cache: nothing here is the system of record.
save ""
appendonly no
maxmemory 512mb
maxmemory-policy allkeys-lru
EOF
    if pid_alive "$dir/redis.pid"; then say "redis: already running on port $REDIS_PORT"; return 0; fi
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by another program; set STACK_${INSTANCE^^}_REDIS_PORT"
    redis-server "$dir/redis.conf" || die "redis did not start; see $LOGS/redis.log"
    wait_for 20 redis port_open "$REDIS_PORT" || die "redis did not open port $REDIS_PORT; see $LOGS/redis.log"
    say "redis: started on port $REDIS_PORT"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE
    pid_alive "$2" || return 0
    local pid; pid=$(cat "$2")
    kill "$pid"
    wait_for 30 "$1 to exit" bash -c "! kill -0 $pid 2>/dev/null" || { kill -9 "$pid" 2>/dev/null || true; }
    rm -f "$2"
    say "$1: stopped"
}

redis_down() { stop_pidfile redis "$STATE/redis/redis.pid"; }

redis_status() {
    if pid_alive "$STATE/redis/redis.pid"; then echo "redis      running  port $REDIS_PORT"; else echo "redis      stopped"; fi
}

# ---------------------------------------------------------------- mosquitto
# The dev broker runs the production cloud config (mosquitto/cloud.conf):
# no anonymous access, per-device ACLs, a TLS listener, with a development
# CA and generated credentials in .stack/dev/mosquitto/etc, and the
# credentials (bridge user, demo device pump-1) in .stack/dev/credentials.env.
# The test broker stays open on loopback (mosquitto/local.conf): the
# security tests start brokers of their own from the production configs.
mosquitto_conf() {
    local dir=$1
    if [ "$INSTANCE" != dev ]; then
        echo "listener $MQTT_PORT 127.0.0.1"
        grep -v '^\s*#' "$ROOT/mosquitto/local.conf" | grep -v '^\s*$'
        return
    fi
    local bridge="$ROOT/.venv/bin/bridge" etc="$dir/etc" creds="$STATE/credentials.env"
    [ -x "$bridge" ] || die "the dev broker's config is made by the bridge CLI; run: make services"
    if [ ! -s "$creds" ]; then
        mkdir -p "$etc"
        "$bridge" broker ca --out "$etc" >/dev/null 2>>"$LOGS/broker-setup.log" || die "could not make the dev CA"
        local bridge_pw device_pw
        bridge_pw=$("$bridge" broker provision bridge --passwd "$etc/passwd" 2>>"$LOGS/broker-setup.log") || die "could not provision the bridge user"
        device_pw=$("$bridge" broker provision pump-1 --passwd "$etc/passwd" 2>>"$LOGS/broker-setup.log") || die "could not provision pump-1"
        (umask 077; cat >"$creds" <<EOF
# Dev credentials for the local broker (loopback port $MQTT_PORT, TLS port $((MQTT_PORT + 7000))).
BRIDGE_MQTT__USERNAME=bridge
BRIDGE_MQTT__PASSWORD=$bridge_pw
BRIDGE_MQTT__GROUP=g$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DEVICE_USERNAME=pump-1
DEVICE_PASSWORD=$device_pw
EOF
)
        "$bridge" broker gate open --gate "$etc/passwd.gate" --passwd "$etc/passwd" >/dev/null \
            || die "could not open the device listener's gate"
    fi
    "$bridge" broker render cloud --etc "$etc" --out "$dir/cloud.conf" --bind 127.0.0.1 \
        --local-port "$MQTT_PORT" --port $((MQTT_PORT + 7000)) --services-port $((MQTT_PORT + 7001)) \
        >/dev/null 2>>"$LOGS/broker-setup.log" || die "could not render the cloud broker config"
    cat "$dir/cloud.conf"
}

mosquitto_up() {
    local dir="$STATE/mosquitto"; mkdir -p "$dir/data"
    local body; body=$(mosquitto_conf "$dir")
    write_if_changed "$dir/mosquitto.conf" <<EOF
# Written by scripts/stack.sh; edits are overwritten.
# Mosquitto drops root privileges to this user; keep it the owner of $dir.
user $(id -un)
pid_file $dir/mosquitto.pid
persistence_location $dir/data/
log_dest file $LOGS/mosquitto.log
$body
EOF
    if pid_alive "$dir/mosquitto.pid"; then say "mosquitto: already running on port $MQTT_PORT"; return 0; fi
    local port ports=("$MQTT_PORT")
    [ "$INSTANCE" = dev ] && ports+=($((MQTT_PORT + 7000)) $((MQTT_PORT + 7001)))
    for port in "${ports[@]}"; do
        port_open "$port" && die "port $port is taken by another program; set STACK_${INSTANCE^^}_MQTT_PORT (the dev broker also uses it + 7000 and + 7001)"
    done
    if [ "$INSTANCE" = dev ]; then  # what a production broker runs before it starts
        local problems
        problems=$("$ROOT/.venv/bin/bridge" broker check "$dir/mosquitto.conf" 2>&1) \
            || { printf '%s\n' "$problems" >&2; die "the dev broker's config has the problems above"; }
    fi
    mosquitto -c "$dir/mosquitto.conf" -d 2>>"$LOGS/mosquitto.log" || die "mosquitto did not start; see $LOGS/mosquitto.log"
    wait_for 20 mosquitto port_open "$MQTT_PORT" || die "mosquitto did not open port $MQTT_PORT; see $LOGS/mosquitto.log"
    say "mosquitto: started on port $MQTT_PORT"
}

mosquitto_down() { stop_pidfile mosquitto "$STATE/mosquitto/mosquitto.pid"; }

mosquitto_status() {
    if pid_alive "$STATE/mosquitto/mosquitto.pid"; then echo "mosquitto  running  port $MQTT_PORT"; else echo "mosquitto  stopped"; fi
}

# ---------------------------------------------------------------- main
print_env() {
    local user=postgres db=postgres
    [ "$INSTANCE" = dev ] && user=bridge db=bridge
    echo "BRIDGE_DATABASE__URL=postgresql://$user@127.0.0.1:$PG_PORT/$db"
    echo "BRIDGE_REDIS__URL=redis://127.0.0.1:$REDIS_PORT/0"
    echo "BRIDGE_MQTT__HOST=127.0.0.1"
    echo "BRIDGE_MQTT__PORT=$MQTT_PORT"
    if [ -s "$STATE/credentials.env" ]; then grep '^BRIDGE_' "$STATE/credentials.env"; fi
}

print_info() {
    local user=postgres db=postgres
    [ "$INSTANCE" = dev ] && user=bridge db=bridge
    echo "  PostgreSQL  postgresql://$user@127.0.0.1:$PG_PORT/$db    psql -h 127.0.0.1 -p $PG_PORT -U $user $db"
    echo "  Redis       redis://127.0.0.1:$REDIS_PORT/0              redis-cli -p $REDIS_PORT"
    if [ -s "$STATE/credentials.env" ]; then
        echo "  Mosquitto   mqtt://127.0.0.1:$MQTT_PORT (TLS on $((MQTT_PORT + 7000))), no anonymous access"
        echo "              credentials: $STATE/credentials.env (bridge user, demo device pump-1)"
        echo "              CA certificate: $STATE/mosquitto/etc/ca.crt"
    else
        echo "  Mosquitto   mqtt://127.0.0.1:$MQTT_PORT                 mosquitto_sub -p $MQTT_PORT -t 'telemetry/#' -v"
    fi
    echo "  State in .stack/$INSTANCE, logs in .stack/$INSTANCE/log"
}

select_instance() {
    INSTANCE=${1:-dev}
    ports_for "$INSTANCE"
    STATE="$ROOT/.stack/$INSTANCE"; LOGS="$STATE/log"
    mkdir -p "$STATE" "$LOGS"
    chmod 755 "$ROOT/.stack" "$STATE" "$LOGS"
}

services() { [ $# -gt 0 ] && echo "$@" || echo "postgres redis mosquitto"; }

cmd=${1:-}; shift || true
case "$cmd" in
    install) install_packages ;;
    up)
        install_packages
        select_instance "${1:-dev}"; shift || true
        for s in $(services "$@"); do "${s}_up"; done
        ;;
    down)
        target=${1:-all}; shift || true
        [ "$target" = all ] && instances="dev test" || instances=$target
        for i in $instances; do
            [ -d "$ROOT/.stack/$i" ] || continue
            select_instance "$i"
            for s in $( [ $# -gt 0 ] && echo "$@" || echo replica postgres redis mosquitto ); do "${s}_down"; done
        done
        ;;
    status)
        select_instance "${1:-dev}"
        postgres_status; redis_status; mosquitto_status
        ;;
    env) select_instance "${1:-dev}"; print_env ;;
    info) select_instance "${1:-dev}"; print_info ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
esac
