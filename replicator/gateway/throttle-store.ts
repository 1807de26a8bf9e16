// The bandwidth cap set from chat for each app, kept beside its store so a gateway restart keeps it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, systemCode } from '../../core/errors.js';
import { parseRateSchedule, RATE_HINT } from '../../core/rate-schedule.js';
import type { ThrottleRequest, ThrottleState } from '../transport/protocol.js';

/**
 * Caps set with `throttle APP RATE` in chat. The agent learns its app's from
 * every heartbeat answer and applies it over `agent.maxRate` of its dr.yaml;
 * `default` removes it, and the agent's own setting holds again.
 */
export class ThrottleStore {
  private readonly cache = new Map<string, ThrottleState>();

  constructor(
    private readonly storeDir: string,
    private readonly now: () => number = Date.now,
  ) {}

  private file(app: string): string {
    return join(this.storeDir, 'apps', app, 'throttle.json');
  }

  async get(app: string): Promise<ThrottleState> {
    const held = this.cache.get(app);
    if (held) return held;
    let s: ThrottleState;
    try {
      s = JSON.parse(await readFile(this.file(app), 'utf8')) as ThrottleState;
    } catch (err) {
      if (systemCode(err) !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
      s = { maxRate: null }; // none set (or a torn file from before atomic writes): the agent's own holds
    }
    this.cache.set(app, s);
    return s;
  }

  /** Sets (or with null, removes) the app's cap; the rate is checked here too, whoever sent it. */
  async set(app: string, req: ThrottleRequest): Promise<ThrottleState> {
    if (req.maxRate !== null) {
      const text = req.maxRate;
      const parsed = parseRateSchedule(text);
      if ('error' in parsed) {
        throw new DrError(`maxRate ${JSON.stringify(text.slice(0, 60))}: ${parsed.error}`, {
          code: 'bad_request',
          subject: app,
          remedy: RATE_HINT,
        });
      }
    }
    const next: ThrottleState = {
      maxRate: req.maxRate === null ? null : req.maxRate.trim(),
      by: req.by,
      at: new Date(this.now()).toISOString(),
    };
    await writeFileAtomic(this.file(app), JSON.stringify(next));
    this.cache.set(app, next);
    return next;
  }
}
