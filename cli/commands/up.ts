import type { Command } from 'commander';
import { COMMAND_NAMES } from '../command-names.js';
import { contextOf, type ExitState, runAction } from '../context.js';
import { demoExists, prepareDemo } from '../demo/prepare-demo.js';
import { homeInitialised, runDr } from '../up/home-access.js';
import { freePort } from '../up/ports.js';
import { runUp } from '../up/run-up.js';

export function registerUp(program: Command, exit: ExitState): void {
  program
    .command('up')
    .description(
      'run everything on this machine: Redis, gateway, worker, serve, an agent per app; Ctrl-C stops it all',
    )
    .option(
      '--demo',
      'add the demo-shop app: orders on SQLite with a live workload (initialises DR_HOME if needed)',
    )
    .option('--listen <host:port>', 'where `dr serve` listens (default 127.0.0.1:8787)')
    .option('--no-console', 'do not open the chat console in this terminal')
    .option('--json', 'once up, print where everything is as one JSON line (no console)')
    .action(
      async (
        opts: { demo?: boolean; listen?: string; console: boolean; json?: boolean },
        cmd: Command,
      ) =>
        runAction(exit, opts.json, async () => {
          const ctx = contextOf(cmd);
          const has = (name: string) => COMMAND_NAMES.includes(name);
          // Once made, demo-shop comes up with every `dr up` of its home (its volume needs dr up).
          const demo = opts.demo === true || demoExists(ctx.home);
          return runUp({
            home: ctx.home,
            env: process.env,
            out: ctx.out,
            hasCommand: has,
            json: opts.json === true,
            // The console reads the terminal: only where there is one.
            console: opts.console && opts.json !== true && process.stdin.isTTY === true,
            ...(opts.listen !== undefined ? { listen: opts.listen } : {}),
            ...(demo ? { demo: (home: string) => prepareDemo(home, process.env, ctx.out) } : {}),
            ...(opts.demo
              ? {
                  init: async (home: string) => {
                    if (await homeInitialised(home)) return;
                    ctx.out(`up: no Lifeboat home at ${home} yet; making one (dr init)`);
                    runDr(['init', '--home', home, '--gateway', `127.0.0.1:${await freePort()}`], {
                      ...process.env,
                      DR_LOG_LEVEL: 'warn',
                    });
                  },
                }
              : {}),
          });
        }),
    );
}
