#!/usr/bin/env bash
# A throwaway S3-compatible server on 127.0.0.1, for dfwe's remote-cache tests and benchmark and
# for trying a remote without an account anywhere: OpenStack Swift with its s3api middleware (a
# proxy, one account, container and object server, one replica on one directory, rings built
# here) and memcached for tempauth's tokens. Not a fake: the S3 API as Swift serves it.
#
#   scripts/local-s3.sh start [DIR]   # prints the exports for a writer; eval it
#   scripts/local-s3.sh stop [DIR]
#
# Two users: dfwe:writer (an admin of the account: reads and writes) and dfwe:reader (may only read
# the bucket dfwe-test, which start creates). Their keys are in the exports (DFWE_TEST_S3_*).
# Needs Debian's swift swift-proxy swift-object swift-container swift-account memcached and curl,
# and root: the servers drop their privileges to the swift user.
set -euo pipefail
cmd=${1:?usage: local-s3.sh start|stop [DIR]}
dir=${2:-/tmp/dfwe-s3}
port=${DFWE_S3_PORT:-18080}
bucket=dfwe-test
writer_key=dfwe-writer-secret
reader_key=dfwe-reader-secret

stop() {
  for pidfile in "$dir"/run/*.pid; do
    [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  # memcached drops to the swift user before it writes its pid file, which it then cannot: found by its command line.
  pkill -f "memcached .*-P $dir/run/memcached.pid" 2>/dev/null || true
  # Wait for them to go, so that a restart finds the ports free.
  for _ in $(seq 100); do
    pgrep -f "$dir/etc/" >/dev/null || pgrep -f "memcached.*$dir" >/dev/null || return 0
    sleep 0.1
  done
}

server_conf() { # kind port
  cat > "$dir/etc/$1-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $2
workers = 1
user = swift
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
log_name = $1-server

[pipeline:main]
pipeline = $1-server

[app:$1-server]
use = egg:swift#$1
CONF
}

start() {
  stop
  rm -rf "$dir"
  mkdir -p "$dir"/{etc,srv/d1,run,log}
  id swift >/dev/null 2>&1 || useradd --system --no-create-home swift
  memcached -d -u swift -l 127.0.0.1 -p $((port + 131)) -P "$dir/run/memcached.pid" -U 0
  cat > "$dir/etc/swift.conf" <<CONF
[swift-hash]
swift_hash_path_suffix = dfwe-local-s3
swift_hash_path_prefix = dfwe-local-s3

[storage-policy:0]
name = Policy-0
default = yes
CONF
  local kind kport
  for kind in object container account; do
    case $kind in object) kport=$((port + 120)) ;; container) kport=$((port + 121)) ;; account) kport=$((port + 122)) ;; esac
    swift-ring-builder "$dir/etc/$kind.builder" create 8 1 1 >/dev/null
    swift-ring-builder "$dir/etc/$kind.builder" add "r1z1-127.0.0.1:$kport/d1" 100 >/dev/null
    swift-ring-builder "$dir/etc/$kind.builder" rebalance >/dev/null
    server_conf "$kind" "$kport"
  done
  cat > "$dir/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 1
user = swift
swift_dir = $dir/etc
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_dfwe_writer = $writer_key .admin
user_dfwe_reader = $reader_key

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$((port + 131))

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
CONF
  chown -R swift: "$dir/srv" "$dir/run"
  for kind in object container account proxy; do
    "swift-$kind-server" "$dir/etc/$kind-server.conf" >"$dir/log/$kind.log" 2>&1 &
    echo $! >"$dir/run/$kind.pid"
  done
  # Ready when the writer can create the bucket and let the reader read it (Swift's own API: S3
  # ACLs are off).
  local token=''
  for _ in $(seq 300); do
    token=$(curl -fsS -D - -o /dev/null -H 'X-Auth-User: dfwe:writer' -H "X-Auth-Key: $writer_key" "http://127.0.0.1:$port/auth/v1.0" 2>/dev/null | tr -d '\r' | sed -n 's/^X-Auth-Token: //Ip') || true
    [[ -n $token ]] && curl -fsS -X PUT -H "X-Auth-Token: $token" -H 'X-Container-Read: dfwe:reader,.rlistings' "http://127.0.0.1:$port/v1/AUTH_dfwe/$bucket" >/dev/null 2>&1 && break
    token=''
    sleep 0.1
  done
  if [[ -z $token ]]; then
    echo "local-s3: the server did not come up; logs in $dir/log" >&2
    tail -n 20 "$dir"/log/*.log >&2 || true
    return 1
  fi
  cat <<EXPORTS
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=dfwe:writer AWS_SECRET_ACCESS_KEY=$writer_key
export DFWE_TEST_S3_BUCKET=$bucket DFWE_TEST_S3_READER_ID=dfwe:reader DFWE_TEST_S3_READER_SECRET=$reader_key DFWE_TEST_S3_DIR=$dir
EXPORTS
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: local-s3.sh start|stop [DIR]" >&2; exit 2 ;;
esac
