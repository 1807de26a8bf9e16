import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import type { AuditEntry } from '../../engine/audit-log.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { openRedis, redisPrefix } from '../recovery-connect.js';

export function registerAudit(program: Command, exit: ExitState): void {
  const audit = program
    .command('audit')
    .description('the hash-chained audit log of commands, decisions, approvals, jobs and results');

  audit
    .command('export')
    .description('write the audit log as JSON lines (one entry a line, oldest first)')
    .option('--out <file>', 'write to this file instead of standard output')
    .action(async (opts: { out?: string }, c: Command) =>
      runAction(exit, false, async () => {
        const ctx = contextOf(c);
        const redis = await openRedis(ctx.env, 'lifeboat-dr-audit');
        const { AuditLog } = await import('../../engine/audit-log.js');
        const log = new AuditLog(redis, redisPrefix(ctx.env));
        const sink = opts.out ? createWriteStream(opts.out, { flags: 'wx' }) : process.stdout;
        let failed: unknown;
        sink.on('error', (err) => {
          failed = err;
        });
        let n = 0;
        try {
          for await (const e of log.entries()) {
            if (failed) break;
            if (!sink.write(`${JSON.stringify(e)}\n`)) await once(sink, 'drain');
            n++;
          }
        } finally {
          redis.disconnect();
          if (opts.out) {
            sink.end();
            await once(sink, 'close').catch(() => undefined); // an open error was recorded above
          }
        }
        if (failed) {
          throw new DrError(`cannot write ${opts.out}: ${errorMessage(failed)}`, {
            code: 'target_exists',
            subject: opts.out ?? 'stdout',
            remedy:
              systemCode(failed) === 'EEXIST'
                ? 'choose a new file name; an export never overwrites'
                : 'check the path and permissions',
          });
        }
        if (opts.out) process.stderr.write(`${n} entries written to ${opts.out}\n`);
        return 0;
      }),
    );

  audit
    .command('verify')
    .description('check the chain: finds any edited, removed or reordered entry (exit 1 if any)')
    .argument('[file]', 'a JSONL export to check instead of the log in Redis')
    .option('--json', 'print JSON')
    .action(async (file: string | undefined, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(c);
        const { AuditLog, verifyAudit } = await import('../../engine/audit-log.js');
        let result: Awaited<ReturnType<typeof verifyAudit>>;
        if (file) {
          result = await verifyAudit(readJsonl(file));
        } else {
          const redis = await openRedis(ctx.env, 'lifeboat-dr-audit');
          try {
            const log = new AuditLog(redis, redisPrefix(ctx.env));
            result = await verifyAudit(log.entries(), await log.head());
          } finally {
            redis.disconnect();
          }
        }
        const ok = result.problems.length === 0;
        if (opts.json) printJson({ ok, source: file ?? 'redis', ...result });
        else if (ok) ctx.out(`ok: ${result.count} entries, chain intact`);
        else {
          for (const p of result.problems)
            process.stderr.write(`entry ${p.position} (seq ${p.seq}): ${p.problem}\n`);
          process.stderr.write(
            `dr: the audit log was tampered with: ${result.problems.length} problem(s) in ${result.count} entries\n`,
          );
        }
        return ok ? 0 : 1;
      }),
    );
}

/** Entries of a JSONL file; a line that is not JSON becomes an entry that fails verification. */
async function* readJsonl(file: string): AsyncGenerator<AuditEntry> {
  const stream = createReadStream(file, 'utf8');
  const opened = once(stream, 'open').catch((err: unknown) => {
    throw new DrError(`cannot read ${file}: ${errorMessage(err)}`, {
      code: 'bad_request',
      subject: file,
      remedy: 'give the path of a file `dr audit export --out` wrote',
    });
  });
  await opened;
  for await (const line of createInterface({
    input: stream,
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line) as AuditEntry;
    } catch {
      yield { seq: -1 } as AuditEntry; // not JSON: reported as "not an audit entry"
    }
  }
}
