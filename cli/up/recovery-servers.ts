import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalServerRecord } from '../../replicator/providers/local-provider.js';
import { groupAlive, signalGroup } from '../../replicator/providers/process-group.js';

/**
 * The local provider's servers outlive the worker on purpose (a restarted worker finds them
 * again). When `dr up` stops, drill servers go with it: they are throwaway copies and nothing
 * may be left running; their images stay for the drill's cleanup. A failed-over server is
 * production now: it keeps running, and this says so.
 */
export async function stopDrillServers(home: string, out: (line: string) => void): Promise<void> {
  const dir = join(home, 'recovery');
  const entries = await readdir(dir).catch(() => [] as string[]); // no recovery yet
  for (const name of entries) {
    let record: LocalServerRecord;
    try {
      record = JSON.parse(await readFile(join(dir, name, 'server.json'), 'utf8'));
    } catch {
      continue; // no server here (images only, or being removed)
    }
    const pgid = record.pgid;
    if (pgid === undefined || !groupAlive(pgid)) continue;
    if (record.mode !== 'drill') {
      out(
        `up: the failed-over server of ${record.app} (${record.opId}, pid ${pgid}) keeps running: it is production now`,
      );
      continue;
    }
    signalGroup(pgid, 'SIGTERM');
    const until = Date.now() + 5000;
    while (groupAlive(pgid) && Date.now() < until) await sleep(50);
    if (groupAlive(pgid)) signalGroup(pgid, 'SIGKILL');
    out(
      `up: stopped the drill server of ${record.app} (${record.opId}, pid ${pgid}); its images stay until \`dr cleanup ${record.opId}\``,
    );
  }
}
