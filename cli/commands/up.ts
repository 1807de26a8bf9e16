import type { Command } from 'commander';
import { contextOf, type ExitState, runAction } from '../context.js';
import { runUp } from '../up/run-up.js';

export function registerUp(program: Command, exit: ExitState): void {
  program
    .command('up')
    .description(
      'run everything on this machine: Redis, gateway, worker, serve, an agent per app; Ctrl-C stops it all',
    )
    .option(
      '--demo',
      'add the demo-shop app with a live order workload (initialises DR_HOME if needed)',
    )
    .option('--listen <host:port>', 'where `dr serve` listens (default 127.0.0.1:8787)')
    .action(async (opts: { demo?: boolean; listen?: string }, cmd: Command) =>
      runAction(exit, false, async () => {
        const ctx = contextOf(cmd);
        const has = (name: string) => program.commands.some((c) => c.name() === name);
        return runUp({
          home: ctx.home,
          env: process.env,
          out: ctx.out,
          hasCommand: has,
          ...(opts.listen !== undefined ? { listen: opts.listen } : {}),
        });
      }),
    );
}
