import { Command, CommanderError } from 'commander';
import { registerAgent } from './commands/agent.js';
import { registerApp } from './commands/app.js';
import { registerAudit } from './commands/audit.js';
import { registerChat } from './commands/chat.js';
import { registerDoctor } from './commands/doctor.js';
import { registerGateway } from './commands/gateway.js';
import { registerInit } from './commands/init.js';
import { registerOperation } from './commands/operation.js';
import { registerPause } from './commands/pause.js';
import { registerPoints } from './commands/points.js';
import { registerPolicy } from './commands/policy.js';
import { registerRecovery } from './commands/recovery.js';
import { registerRestore } from './commands/restore.js';
import { registerServe } from './commands/serve.js';
import { registerStatus } from './commands/status.js';
import { registerUp } from './commands/up.js';
import { registerVerify } from './commands/verify.js';
import { registerWarm } from './commands/warm.js';
import { registerWorker } from './commands/worker.js';
import type { ExitState } from './context.js';

export function buildProgram(exit: ExitState): Command {
  const program = new Command('dr')
    .description('Lifeboat: disaster recovery for cloud servers, run from chat')
    .option('--home <dir>', 'Lifeboat home (default: $DR_HOME or ./.lifeboat)')
    .showHelpAfterError('(run `dr --help` for usage)')
    .exitOverride();
  for (const register of [
    registerInit,
    registerApp,
    registerGateway,
    registerAgent,
    registerPoints,
    registerRestore,
    registerVerify,
    registerStatus,
    registerWorker,
    registerWarm,
    registerRecovery,
    registerOperation,
    registerPause,
    registerServe,
    registerChat,
    registerPolicy,
    registerAudit,
    registerUp,
    registerDoctor,
  ]) {
    register(program, exit);
  }
  return program;
}

export async function run(argv: string[]): Promise<number> {
  const exit: ExitState = { code: 0 };
  const program = buildProgram(exit);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed.
      return err.exitCode === 0 ? 0 : 2;
    }
    throw err;
  }
  return exit.code;
}
