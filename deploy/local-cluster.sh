#!/usr/bin/env bash
# A local Ward cluster: three `ward serve` replicas sharing one PostgreSQL
# database, behind nginx on one address. Everything runs in the foreground
# of this script and stops on Ctrl-C (or TERM, or when the script exits).
#
#   deploy/local-cluster.sh
#
# Environment (all optional):
#   WARD_BIN            the ward binary [target/release/ward, built if missing]
#   WARD_CLUSTER_DIR    state: database, replicas' data, logs [./ward-cluster]
#   WARD_CLUSTER_PORT   nginx, the cluster's address on 127.0.0.1 [7370]
#   WARD_REPLICA_PORTS  the replicas' ports, space separated [7371 7372 7373]
#   WARD_PG_PORT        PostgreSQL's port on 127.0.0.1 [55432]
#   WARD_PG_BIN         directory of initdb/pg_ctl [newest /usr/lib/postgresql/*/bin]
#   WARD_ADMIN_TOKEN    the operator token [generated once, kept in the state dir]
#
# The state directory is kept between runs (same database, same token);
# delete it to start from nothing.

set -euo pipefail

say() { printf '%s\n' "$*" >&2; }
die() {
    say "local-cluster: $*"
    exit 1
}

root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${WARD_CLUSTER_DIR:-./ward-cluster}
cluster_port=${WARD_CLUSTER_PORT:-7370}
read -r -a replica_ports <<<"${WARD_REPLICA_PORTS:-7371 7372 7373}"
pg_port=${WARD_PG_PORT:-55432}

[[ ${#replica_ports[@]} -ge 1 ]] || die "WARD_REPLICA_PORTS names no port"
for port in "$cluster_port" "${replica_ports[@]}" "$pg_port"; do
    if ! [[ $port =~ ^[0-9]+$ ]] || ((10#$port == 0 || 10#$port > 65535)); then
        die "not a port: $port"
    fi
done

is_root=false
[[ $(id -u) == 0 ]] && is_root=true

# --- Prerequisites ----------------------------------------------------------

# The directory holding PostgreSQL's server programs.
find_pg_bin() {
    if [[ -n ${WARD_PG_BIN:-} ]]; then
        [[ -x $WARD_PG_BIN/initdb && -x $WARD_PG_BIN/pg_ctl && -x $WARD_PG_BIN/postgres ]] ||
            die "WARD_PG_BIN=$WARD_PG_BIN does not hold initdb, pg_ctl and postgres"
        printf '%s\n' "$WARD_PG_BIN"
        return
    fi
    # Debian installs each major version side by side; the newest wins.
    local dir best=""
    while read -r dir; do
        if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
            best=$dir
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    if [[ -n $best ]]; then
        printf '%s\n' "$best"
        return
    fi
    local initdb
    if initdb=$(command -v initdb); then
        dirname "$initdb"
    fi
}

find_nginx() {
    command -v nginx || { [[ -x /usr/sbin/nginx ]] && printf '%s\n' /usr/sbin/nginx; } || true
}

pg_bin=$(find_pg_bin)
nginx_bin=$(find_nginx)
missing=()
[[ -n $pg_bin ]] || missing+=(postgresql)
[[ -n $nginx_bin ]] || missing+=(nginx)
if ((${#missing[@]})); then
    $is_root || die "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}' (Debian packages), or set WARD_PG_BIN"
    installed=true
    "$root_dir/deploy/apt-install.sh" "${missing[@]}" || installed=false
    $installed || die "apt-get install ${missing[*]} failed"
    pg_bin=$(find_pg_bin)
    nginx_bin=$(find_nginx)
    [[ -n $pg_bin && -n $nginx_bin ]] || die "PostgreSQL or nginx still missing after apt-get install"
fi
if [[ -x $pg_bin/psql ]]; then
    psql=$pg_bin/psql
else
    psql=$(command -v psql) || die "psql not found: install Debian's postgresql-client"
fi

if [[ -n ${WARD_BIN:-} ]]; then
    ward=$WARD_BIN
    [[ -x $ward ]] || die "WARD_BIN=$ward is not an executable"
else
    ward=${CARGO_TARGET_DIR:-$root_dir/target}/release/ward
    if [[ ! -x $ward ]]; then
        say "Building ward (cargo build --release -p ward-cli)"
        (cd "$root_dir" && cargo build --release -p ward-cli)
    fi
fi

# Something already answering on a port would be mistaken for ours.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$cluster_port" "${replica_ports[@]}" "$pg_port"; do
    port_busy "$port" && die "port $port on 127.0.0.1 is already in use (see the WARD_*_PORT variables)"
done

mkdir -p "$state"
state=$(cd "$state" && pwd)

# --- Stopping everything ----------------------------------------------------

replica_pids=()
nginx_pid=""
pg_started=false

# Runs a PostgreSQL program: PostgreSQL refuses to run as root, so as the
# `postgres` user then, from a directory that user can enter.
as_pg() {
    if $is_root; then
        (cd "$pg_home" && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# shellcheck disable=SC2317 # called from the trap below
# Sends TERM to the pids given, waits up to 15 s, then KILLs the rest.
stop_pids() {
    local pid alive
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 150); do
        alive=false
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=true; done
        $alive || break
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    say ""
    say "Stopping the cluster"
    local pids=("${replica_pids[@]}")
    [[ -n $nginx_pid ]] && pids+=("$nginx_pid")
    ((${#pids[@]})) && stop_pids "${pids[@]}"
    if $pg_started; then
        as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w -t 30 stop >/dev/null ||
            as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate -w -t 10 stop >/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL -------------------------------------------------------------

pg_home=$state/postgres
if $is_root; then
    id -u postgres >/dev/null 2>&1 ||
        die "no 'postgres' user to run PostgreSQL as: apt-get install postgresql creates it"
    mkdir -p "$pg_home"
    chown postgres:postgres "$pg_home"
    # The postgres user must be able to reach the state directory (not so
    # under /root, for one); if it cannot, the database lives under /var/tmp,
    # in a directory named after the state directory so that reruns find it.
    if ! (cd / && runuser -u postgres -- test -w "$pg_home"); then
        rmdir "$pg_home" 2>/dev/null || true
        pg_home=/var/tmp/ward-cluster-pg-$(printf '%s' "$state" | cksum | cut -d' ' -f1)
        mkdir -p "$pg_home"
        chown postgres:postgres "$pg_home"
        chmod 700 "$pg_home"
        ln -sfn "$pg_home" "$state/postgres"
        say "The postgres user cannot reach $state; PostgreSQL's data is in $pg_home"
    fi
else
    mkdir -p "$pg_home"
fi
pg_data=$pg_home/data
pg_log=$pg_home/server.log

if [[ ! -f $pg_data/PG_VERSION ]]; then
    say "Creating a PostgreSQL cluster in $pg_data"
    as_pg "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres -E UTF8 --no-locale >"$state/initdb.log" 2>&1 ||
        {
            cat "$state/initdb.log" >&2
            die "initdb failed"
        }
fi
# A server left behind by an earlier run that was killed outright.
if as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    say "Stopping a PostgreSQL server left running in $pg_data"
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w -t 30 stop >/dev/null
fi

say "Starting PostgreSQL on 127.0.0.1:$pg_port"
# TCP only: an empty unix_socket_directories turns sockets off, so a deep
# state path cannot exceed the socket path limit. Each replica keeps a pool
# of connections, hence more than the default 100.
pg_started=true
as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_log" -w -t 60 \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200" \
    start >/dev/null || {
    tail -n 30 "$pg_log" >&2 || true
    die "PostgreSQL did not start (log: $pg_log)"
}

pg_sql() {
    as_pg "$psql" -X -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "$1"
}
for _ in $(seq 100); do
    pg_sql 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
done
if [[ -z $(pg_sql "SELECT 1 FROM pg_database WHERE datname = 'ward'") ]]; then
    pg_sql 'CREATE DATABASE ward' >/dev/null
fi
store=postgres://postgres@127.0.0.1:$pg_port/ward

# --- Ward -------------------------------------------------------------------

say "Migrating the store's schema"
"$ward" store migrate --store "$store"

token_file=$state/operator-token
if [[ -n ${WARD_ADMIN_TOKEN:-} ]]; then
    token=$WARD_ADMIN_TOKEN
elif [[ -s $token_file ]]; then
    token=$(<"$token_file")
else
    if command -v openssl >/dev/null; then
        token=ward_op_$(openssl rand -hex 24)
    else
        token=ward_op_$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    fi
    (umask 077 && printf '%s\n' "$token" >"$token_file")
fi

replica_logs=()
for i in "${!replica_ports[@]}"; do
    n=$((i + 1))
    port=${replica_ports[$i]}
    log=$state/replica-$n.log
    mkdir -p "$state/replica-$n"
    WARD_ADMIN_TOKEN=$token "$ward" serve --listen "127.0.0.1:$port" \
        --data-dir "$state/replica-$n" --store "$store" >>"$log" 2>&1 </dev/null &
    replica_pids+=("$!")
    replica_logs+=("$log")
done

# --- nginx ------------------------------------------------------------------

nginx_dir=$state/nginx
mkdir -p "$nginx_dir"
{
    cat <<EOF
# Written by deploy/local-cluster.sh on each start.
daemon off;
worker_processes 2;
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log $nginx_dir/access.log;
    client_body_temp_path $nginx_dir/client_body;
    proxy_temp_path $nginx_dir/proxy;
    fastcgi_temp_path $nginx_dir/fastcgi;
    uwsgi_temp_path $nginx_dir/uwsgi;
    scgi_temp_path $nginx_dir/scgi;
    server_tokens off;
    # Header names with underscores are passed on rather than dropped.
    underscores_in_headers on;

    upstream ward {
EOF
    for port in "${replica_ports[@]}"; do
        printf '        server 127.0.0.1:%s max_fails=1 fail_timeout=5s;\n' "$port"
    done
    cat <<EOF
        keepalive 32;
    }

    server {
        listen 127.0.0.1:$cluster_port;

        location / {
            proxy_pass http://ward;
            proxy_http_version 1.1;
            # Keep-alive to the replicas: no "Connection: close" from nginx.
            proxy_set_header Connection "";
            # The client's Host (Ward builds URLs from it), not "ward".
            proxy_set_header Host \$http_host;
            # A replica that is down or does not answer in time is skipped.
            # POST and PATCH, not idempotent, go to another replica only if
            # they never reached the first.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            # Ward enforces its own body limits.
            client_max_body_size 0;
            # Bodies stream through instead of into temporary files (which,
            # run as root, nginx's unprivileged workers may not be able to
            # write in the state directory).
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
} >"$nginx_dir/nginx.conf"

"$nginx_bin" -t -q -p "$nginx_dir/" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/error.log" ||
    die "nginx rejected $nginx_dir/nginx.conf"
"$nginx_bin" -p "$nginx_dir/" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/error.log" </dev/null &
nginx_pid=$!

# --- Ready ------------------------------------------------------------------

# The HTTP status of GET <path> on 127.0.0.1:<port>, or nothing.
http_status() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n" "$2" "$1" >&3
        read -r _ status _ <&3 && printf "%s\n" "$status"
    ' http_status "$1" "$2" 2>/dev/null || true
}

# Waits up to 60 s for GET <path> on <port> to answer 200, giving up early
# when the process <pid> that should answer has exited.
wait_for() {
    local port=$1 path=$2 pid=$3 log=$4
    for _ in $(seq 300); do
        [[ $(http_status "$port" "$path") == 200 ]] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2 || true
            die "the process serving 127.0.0.1:$port exited (log: $log)"
        fi
        sleep 0.2
    done
    tail -n 30 "$log" >&2 || true
    die "GET http://127.0.0.1:$port$path did not answer 200 within 60 s (log: $log)"
}

for i in "${!replica_ports[@]}"; do
    wait_for "${replica_ports[$i]}" /readyz "${replica_pids[$i]}" "${replica_logs[$i]}"
done
wait_for "$cluster_port" /healthz "$nginx_pid" "$nginx_dir/error.log"

say ""
say "Ward cluster ready at http://127.0.0.1:$cluster_port  operator token: $token"
say ""
for i in "${!replica_ports[@]}"; do
    say "  replica $((i + 1)): http://127.0.0.1:${replica_ports[$i]}  log: ${replica_logs[$i]}"
done
say "  nginx:     http://127.0.0.1:$cluster_port  logs: $nginx_dir/{access,error}.log"
say "  postgres:  $store  log: $pg_log"
say ""
say "  export WARD_URL=http://127.0.0.1:$cluster_port WARD_TOKEN=$token"
say ""
say "Ctrl-C stops the cluster."

# Until a signal, or until nginx or every replica has exited. A replica
# that exits is reported and left out; nginx sends its share to the others.
set +e
live=("${!replica_ports[@]}")
while :; do
    pids=("$nginx_pid")
    for i in "${live[@]}"; do pids+=("${replica_pids[$i]}"); done
    wait -n "${pids[@]}"
    status=$?
    if ! kill -0 "$nginx_pid" 2>/dev/null; then
        say "nginx exited (status $status; log: $nginx_dir/error.log)"
        exit 1
    fi
    still=()
    for i in "${live[@]}"; do
        if kill -0 "${replica_pids[$i]}" 2>/dev/null; then
            still+=("$i")
        else
            say "replica $((i + 1)) exited (log: ${replica_logs[$i]}); the others keep serving"
        fi
    done
    ((${#still[@]})) || {
        say "every replica has exited"
        exit 1
    }
    live=("${still[@]}")
done
