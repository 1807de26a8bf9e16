#!/usr/bin/env bash
# Starts (up) or stops (down) a throwaway Ceph S3 endpoint under DIR: one mon, one BlueStore OSD on a sparse file, radosgw on 127.0.0.1.
#
#   scripts/ceph-s3.sh up DIR     prints the endpoint; writes DIR/s3.env (AWS_* variables, keys generated now)
#   scripts/ceph-s3.sh down DIR   stops the daemons (DIR stays; delete it yourself)
#   scripts/ceph-s3.sh kill DIR rgw|osd|mon   kill -9 of one daemon (for fault tests)
#   scripts/ceph-s3.sh start DIR rgw|osd|mon  starts one daemon again
#
# Needs the Debian packages ceph-mon ceph-osd radosgw ceph-common python3-rados
# (.ci/run installs them). Everything lives under DIR: config, keys, data, logs, pid files.
set -euo pipefail

usage() {
  echo "usage: $0 up|down DIR | kill|start DIR rgw|osd|mon" >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
PY=/usr/bin/python3

need() {
  for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool; do
    command -v "$tool" >/dev/null || {
      echo "ceph-s3: $tool is missing: apt-get install -y ceph-mon ceph-osd radosgw ceph-common python3-rados" >&2
      exit 3
    }
  done
  $PY -c 'import rados' 2>/dev/null || {
    echo "ceph-s3: python3-rados is missing: apt-get install -y python3-rados" >&2
    exit 3
  }
}

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

random_hex() {
  head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'
}

pid_file() {
  case $1 in
  rgw) echo "$dir/run/client.rgw.a.pid" ;;
  osd) echo "$dir/run/osd.0.pid" ;;
  mon) echo "$dir/run/mon.a.pid" ;;
  esac
}

pid_of() {
  local f
  f=$(pid_file "$1")
  [ -f "$f" ] && cat "$f"
}

alive() {
  local pid
  pid=$(pid_of "$1") || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Waits up to $2 seconds (in 0.1 s steps) for the command in the rest of the arguments.
wait_until() {
  local what=$1 limit=$2
  shift 2
  local i=0
  while ! "$@" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge $((limit * 10)) ]; then
      echo "ceph-s3: $what did not happen within ${limit}s (logs in $dir/log)" >&2
      return 1
    fi
    sleep 0.1
  done
}

mon_command() {
  $PY - "$dir/ceph.conf" "$1" <<'EOF'
import json, sys, rados
c = rados.Rados(conffile=sys.argv[1], name='client.admin')
c.connect(timeout=20)
ret, out, err = c.mon_command(sys.argv[2], b'', timeout=20)
c.shutdown()
if ret != 0 and ret != -17:
    sys.stderr.write(f'ceph-s3: mon command failed ({ret}): {err}\n')
    sys.exit(1)
sys.stdout.write(out.decode())
EOF
}

start_mon() { ceph-mon -c "$dir/ceph.conf" -i a 2>>"$dir/log/daemons.err"; }
start_osd() { ceph-osd -c "$dir/ceph.conf" -i 0 2>>"$dir/log/daemons.err"; }
start_rgw() { radosgw -c "$dir/ceph.conf" -n client.rgw.a 2>>"$dir/log/daemons.err"; }

osd_active() { grep -q 'booting -> active' "$dir/log/osd.0.log"; }
rgw_listening() {
  $PY -c "import socket,sys; s=socket.create_connection(('127.0.0.1',int(sys.argv[1])),1)" "$(cat "$dir/rgw.port")"
}

up() {
  need
  if [ -f "$dir/s3.env" ] && alive rgw; then
    echo "ceph-s3: already up in $dir" >&2
    grep AWS_ENDPOINT_URL_S3 "$dir/s3.env" | cut -d= -f2-
    return 0
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  rm -rf "$dir/mon" "$dir/osd" "$dir/osd.block" "$dir/run" "$dir/log" "$dir/rgw"
  mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log" "$dir/rgw"
  local fsid osd_uuid mon_port rgw_port
  fsid=$($PY -c 'import uuid; print(uuid.uuid4())')
  osd_uuid=$($PY -c 'import uuid; print(uuid.uuid4())')
  mon_port=$(free_port)
  rgw_port=$(free_port)
  echo "$rgw_port" >"$dir/rgw.port"
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
mon data avail warn = 10
mon data avail crit = 1
paxos propose interval = 0.1
mon warn on pool no redundancy = false
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd
osd objectstore = bluestore
bluestore block path = $dir/osd.block
bluestore block size = 10737418240
bluestore block create = true
osd op num shards = 2
bdev aio poll ms = 20
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
EOF
  chmod 600 "$dir/ceph.conf"
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
  chmod 600 "$dir/keyring"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring"
  start_mon
  # The OSD's file system is made while the monitor starts.
  ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.log" 2>&1 &
  local mkfs=$!
  mon_command "{\"prefix\":\"osd new\",\"uuid\":\"$osd_uuid\",\"id\":0}" >/dev/null
  for pool in .rgw.root default.rgw.log default.rgw.control default.rgw.meta \
    default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    mon_command "{\"prefix\":\"osd pool create\",\"pool\":\"$pool\",\"pg_num\":8}" >/dev/null
    mon_command "{\"prefix\":\"osd pool application enable\",\"pool\":\"$pool\",\"app\":\"rgw\"}" >/dev/null
  done
  wait "$mkfs" || {
    echo "ceph-s3: the OSD's mkfs failed (see $dir/log/osd-mkfs.log)" >&2
    exit 1
  }
  start_osd
  wait_until "the OSD becoming active" 60 osd_active
  start_rgw
  local access secret
  access=$(random_hex 10 | tr a-f A-F)
  secret=$(random_hex 20)
  radosgw-admin -c "$dir/ceph.conf" -n client.admin user create --uid=lifeboat \
    --display-name=lifeboat --access-key="$access" --secret-key="$secret" >/dev/null
  wait_until "radosgw listening on 127.0.0.1:$rgw_port" 60 rgw_listening
  umask 077
  cat >"$dir/s3.env" <<EOF
AWS_ENDPOINT_URL_S3=http://127.0.0.1:$rgw_port
AWS_ACCESS_KEY_ID=$access
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=us-east-1
EOF
  echo "http://127.0.0.1:$rgw_port"
}

stop_one() {
  local name=$1 sig=$2 pid
  pid=$(pid_of "$name") || return 0
  [ -n "$pid" ] || return 0
  kill "-$sig" "$pid" 2>/dev/null || return 0
  local i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$(pid_file "$name")"
}

down() {
  [ -d "$dir/run" ] || return 0
  # radosgw takes seconds on SIGTERM and holds no data of its own: it goes first, with KILL.
  stop_one rgw KILL
  stop_one osd TERM
  stop_one mon TERM
}

daemon_name() {
  case $1 in
  rgw | osd | mon) echo "$1" ;;
  *) usage ;;
  esac
}

case $cmd in
up) up ;;
down) down ;;
kill)
  [ $# -eq 3 ] || usage
  stop_one "$(daemon_name "$3")" KILL
  ;;
start)
  [ $# -eq 3 ] || usage
  dir=$(cd "$dir" && pwd)
  case $(daemon_name "$3") in
  mon) start_mon ;;
  osd) start_osd ;;
  rgw)
    start_rgw
    wait_until "radosgw listening" 60 rgw_listening
    ;;
  esac
  ;;
*) usage ;;
esac
