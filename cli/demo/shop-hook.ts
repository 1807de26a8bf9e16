// demo-shop's quiesce hook: `node shop-hook.js freeze|thaw STATE_FILE`. The agent runs it around
// each cut; freeze returns once the service has committed its last order and stopped writing.
// A service that is not running writes nothing, so there is nothing to freeze (exit 0).
// Only Node's own modules: it runs twice per cut and must start fast.
import { readFile } from 'node:fs/promises';

async function main(): Promise<number> {
  const [verb, stateFile] = process.argv.slice(2);
  if ((verb !== 'freeze' && verb !== 'thaw') || !stateFile) {
    process.stderr.write('usage: shop-hook freeze|thaw STATE_FILE\n');
    return 2;
  }
  let state: { pid: number; url: string };
  try {
    state = JSON.parse(await readFile(stateFile, 'utf8')) as { pid: number; url: string };
  } catch {
    return 0; // no state file: the service never ran here, so nothing writes
  }
  try {
    process.kill(state.pid, 0);
  } catch {
    return 0; // the service is gone: nothing writes
  }
  const res = await fetch(`${state.url}/${verb}`, {
    method: 'POST',
    signal: AbortSignal.timeout(5000),
  }).catch((err: unknown) => {
    process.stderr.write(`demo-shop ${verb}: ${state.url} did not answer (${String(err)})\n`);
    return undefined;
  });
  if (!res?.ok) {
    if (res) process.stderr.write(`demo-shop ${verb}: HTTP ${res.status}\n`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
