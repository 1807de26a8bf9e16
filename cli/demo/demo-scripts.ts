/** The demo's fence, unfence, quiesce and DR-site start scripts, written by `dr up --demo`. */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { shellQuote as q } from './demo-files.js';
import type { DemoKind, Volume } from './prepare-demo.js';

/**
 * A demo service's fence and unfence (demo-shop's; demo-web's has no mount), a shell script.
 * For demo-shop: fence: demo-shop finishes the order in flight,
 * closes its database and takes no orders (SIGHUP with STATE.fence present; it answers with
 * STATE.down), then its ext4 volume is unmounted. unfence: mount again, then SIGHUP without the
 * flag: demo-shop opens its database and takes orders again. While STATE.fence exists a restarted
 * demo-shop starts fenced, so a `dr up` restart during a failover cannot make two shops.
 */
export async function writeFenceScript(
  dir: string,
  state: string,
  volume: Pick<Volume, 'device' | 'mount'>,
  app = 'demo-shop',
  file = 'shop-fence.sh',
): Promise<string> {
  const path = join(dir, file);
  const text = `#!/bin/sh
# ${app}'s fence | unfence, written by \`dr up --demo\` (the failover and failback run it).
state=${q(state)}
mount=${q(volume.mount ?? '')}
device=${q(volume.device)}
wait_for() { # CONDITION MESSAGE: wait up to 10 s
  n=0
  while ! eval "$1"; do
    n=$((n + 1)); [ "$n" -gt 1000 ] && { echo "$2" >&2; exit 1; }
    sleep 0.01
  done
}
pid=$(cat "$state.pid" 2>/dev/null)
running() { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
case "$1" in
  fence)
    touch "$state.fence"
    if running && kill -HUP "$pid"; then
      wait_for '[ -e "$state.down" ]' "${app} (pid $pid) did not close its data within 10 s"
    fi
    if [ -n "$mount" ]; then
      # Thaw first: a file system unmounted while frozen stays frozen and holds its device.
      n=0
      while mountpoint -q "$mount"; do
        fsfreeze -u "$mount" 2>/dev/null
        umount "$mount" 2>/dev/null && break
        n=$((n + 1)); [ "$n" -gt 100 ] && { echo "cannot unmount $mount: $(fuser -vm "$mount" 2>&1 | tail -n +2)" >&2; exit 1; }
        sleep 0.1
      done
      # Unmounted but still alive (frozen by a cut meanwhile): mount it again, thaw, unmount.
      if [ -e "/sys/fs/ext4/$(basename "$(readlink -f "$device")")" ]; then
        mount "$device" "$mount" && fsfreeze -u "$mount" 2>/dev/null; umount "$mount" || exit 1
      fi
    fi
    echo "${app} stopped at the source\${mount:+ and $mount unmounted}" ;;
  unfence)
    if [ -n "$mount" ] && ! mountpoint -q "$mount"; then mount "$device" "$mount" || exit 1; fi
    rm -f "$state.fence"
    if running && kill -HUP "$pid"; then
      wait_for '[ ! -e "$state.down" ]' "${app} (pid $pid) did not open its data within 10 s"
    fi
    echo "${app} runs at the source again" ;;
  *) echo "usage: ${file} fence|unfence" >&2; exit 2 ;;
esac
`;
  await writeFile(path, text, { mode: 0o700 });
  await chmod(path, 0o700);
  return path;
}

/**
 * The local provider's start command for demo-shop: after a failover, the order service on the
 * recovered volume (ext4: attached to a loop device and mounted beside the image), stopped,
 * unmounted and detached on SIGTERM. A drill only checks the recovered copy: it just waits.
 */
export async function writeDrServerScript(dir: string, kind: DemoKind): Promise<string> {
  const path = join(dir, 'shop-dr-server.sh');
  const text = `#!/bin/sh
# demo-shop at the DR site, written by \`dr up --demo\`: NODE SHOP_SERVICE_JS, with DR_VOLUME_DATA.
[ "$DR_MODE" = failover ] || exec sleep infinity
node=$1; service=$2
image=$DR_VOLUME_DATA
here=$(dirname "$image")
kind=${kind}
db=$image
dev=
if [ "$kind" = ext4 ]; then
  mkdir -p "$here/mnt"
  dev=$(losetup --find --show "$image") || exit 1
  mount "$dev" "$here/mnt" || { losetup -d "$dev"; exit 1; }
  db=$here/mnt/shop.db
fi
pid=
stop() {
  # The SIGTERM reached the whole group: wait for the service (and its sqlite3) to be gone,
  # then unmount (again while busy, up to 10 s) and detach.
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid"; fi
  if [ -n "$dev" ]; then
    n=0
    while mountpoint -q "$here/mnt"; do
      umount "$here/mnt" 2>/dev/null && break
      n=$((n + 1)); [ "$n" -gt 100 ] && break
      sleep 0.1
    done
    losetup -d "$dev"
  fi
  exit 0
}
trap stop TERM INT
"$node" "$service" --db "$db" --state "$here/shop-dr.json" --rate 5 &
pid=$!
wait "$pid"
pid=
stop
`;
  await writeFile(path, text, { mode: 0o700 });
  await chmod(path, 0o700);
  return path;
}

/**
 * A demo service's quiesce hook (demo-shop's, demo-web's), a shell script: it runs twice per cut,
 * so it must start in milliseconds (a Node process takes tens, hundreds on a busy machine).
 * Freeze: SIGUSR2, then wait for the service's `.frozen` flag (it finishes the write in flight
 * first); thaw: SIGUSR1, then wait for the flag to go. A service that is not running writes
 * nothing: nothing to do.
 */
export async function writeHookScript(
  dir: string,
  state: string,
  app = 'demo-shop',
  file = 'shop-hook.sh',
): Promise<string> {
  const path = join(dir, file);
  const text = `#!/bin/sh
# ${app}'s quiesce hook (freeze | thaw), written by \`dr up --demo\`.
pid=$(cat ${q(`${state}.pid`)} 2>/dev/null) || exit 0
kill -0 "$pid" 2>/dev/null || exit 0
flag=${q(`${state}.frozen`)}
n=0
case "$1" in
  freeze)
    rm -f "$flag"
    kill -USR2 "$pid" || exit 0
    while [ ! -e "$flag" ]; do
      n=$((n + 1)); [ "$n" -gt 1000 ] && { echo "${app} did not freeze within 10 s" >&2; exit 1; }
      sleep 0.01
    done ;;
  thaw)
    kill -USR1 "$pid" || exit 0
    while [ -e "$flag" ]; do
      n=$((n + 1)); [ "$n" -gt 1000 ] && { echo "${app} did not thaw within 10 s" >&2; exit 1; }
      sleep 0.01
    done ;;
  *) echo "usage: ${file} freeze|thaw" >&2; exit 2 ;;
esac
`;
  await writeFile(path, text, { mode: 0o700 });
  await chmod(path, 0o700);
  return path;
}
