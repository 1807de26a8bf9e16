import { type FSWatcher, watch } from 'node:fs';
import type { ParseOptions } from './parse-policy-file.js';
import type { PolicyProblem } from './policy.js';
import { loadPolicyDir, type PolicySet } from './policy-set.js';

export interface PolicyWatcherOptions {
  dir: string;
  /** The parse options, or how to find them at each load (the plans there are then). */
  parse?: ParseOptions | (() => Promise<ParseOptions>);
  /** Other directories whose changes reload the policies too (the plans a schedule names). */
  alsoWatch?: string[];
  /** A reload was refused: the engine denies every action until the files are fixed. */
  onRefused?: (problems: PolicyProblem[]) => void | Promise<void>;
  /** A new set is in force. */
  onLoaded?: (set: PolicySet) => void | Promise<void>;
  /** Wait this long after the last change before reloading (editors write in several steps). */
  debounceMs?: number;
}

/**
 * Holds the policy set: loads the directory and reloads it when a file changes. When a reload
 * finds any problem, `lastProblems()` says so and the engine denies every action (fail closed);
 * `current()` keeps the last good set for the alerts and schedules only.
 */
export class PolicyWatcher {
  private set: PolicySet | undefined;
  private problems: PolicyProblem[] = [];
  private watchers: FSWatcher[] = [];
  private poll: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<boolean> = Promise.resolve(true);

  constructor(private readonly opts: PolicyWatcherOptions) {}

  current(): PolicySet | undefined {
    return this.set;
  }

  /** Problems of the last load; empty when the files on disk are the set in force. */
  lastProblems(): PolicyProblem[] {
    return this.problems;
  }

  /** Loads now; true when the files were accepted. Loads run one at a time. */
  reload(): Promise<boolean> {
    this.loading = this.loading.then(async () => {
      const { parse } = this.opts;
      const r = await loadPolicyDir(
        this.opts.dir,
        typeof parse === 'function' ? await parse() : parse,
      );
      this.problems = r.problems;
      if (r.set) {
        this.set = r.set;
        await this.opts.onLoaded?.(r.set);
        return true;
      }
      await this.opts.onRefused?.(r.problems);
      return false;
    });
    return this.loading;
  }

  /** Starts watching the directories; falls back to polling every 2 s where one cannot be watched. */
  watch(): void {
    const changed = () => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.reload(), this.opts.debounceMs ?? 200);
      this.timer.unref();
    };
    for (const dir of [this.opts.dir, ...(this.opts.alsoWatch ?? [])]) {
      try {
        const w = watch(dir, { persistent: false }, changed);
        this.watchers.push(w);
        w.on('error', () => {
          // The directory went away: poll until it is back.
          w.close();
          this.startPolling(changed);
        });
      } catch {
        this.startPolling(changed); // no directory yet: polling notices when it appears
      }
    }
  }

  private startPolling(changed: () => void): void {
    if (this.poll) return;
    this.poll = setInterval(changed, 2000);
    this.poll.unref();
  }

  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
    if (this.poll) clearInterval(this.poll);
    if (this.timer) clearTimeout(this.timer);
  }
}
