import { Command, CommanderError } from 'commander';
import { COMMAND_MODULES, COMMAND_NAMES, type CommandModule } from './command-names.js';
import type { ExitState } from './context.js';
import { versionLine } from './version.js';

type Register = (program: Command, exit: ExitState) => void;

/**
 * How each command module is loaded. A command's module is loaded only when
 * it runs (or for help and unknown commands): loading all of them took
 * 0.15 s, which every agent start, `dr status` and benchmarked initial sync
 * waited for.
 */
const LOADERS: Record<CommandModule, () => Promise<Register>> = {
  init: async () => (await import('./commands/init.js')).registerInit,
  app: async () => (await import('./commands/app.js')).registerApp,
  gateway: async () => (await import('./commands/gateway.js')).registerGateway,
  agent: async () => (await import('./commands/agent.js')).registerAgent,
  points: async () => (await import('./commands/points.js')).registerPoints,
  restore: async () => (await import('./commands/restore.js')).registerRestore,
  verify: async () => (await import('./commands/verify.js')).registerVerify,
  status: async () => (await import('./commands/status.js')).registerStatus,
  worker: async () => (await import('./commands/worker.js')).registerWorker,
  warm: async () => (await import('./commands/warm.js')).registerWarm,
  recovery: async () => (await import('./commands/recovery.js')).registerRecovery,
  operation: async () => (await import('./commands/operation.js')).registerOperation,
  pause: async () => (await import('./commands/pause.js')).registerPause,
  serve: async () => (await import('./commands/serve.js')).registerServe,
  chat: async () => (await import('./commands/chat.js')).registerChat,
  signin: async () => (await import('./commands/signin.js')).registerSignin,
  policy: async () => (await import('./commands/policy.js')).registerPolicy,
  audit: async () => (await import('./commands/audit.js')).registerAudit,
  up: async () => (await import('./commands/up.js')).registerUp,
  doctor: async () => (await import('./commands/doctor.js')).registerDoctor,
};

/** The command an argv runs, when it names one of ours (not for --help or a typo). */
function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--home') {
      i++;
      continue;
    }
    if (arg.startsWith('--home=')) continue;
    return COMMAND_NAMES.includes(arg) ? arg : undefined;
  }
  return undefined;
}

/** The `dr` program with every command, or only `only` (the one about to run). */
export async function buildProgram(exit: ExitState, only?: string): Promise<Command> {
  const program = new Command('dr')
    .description('Lifeboat: disaster recovery for cloud servers, run from chat')
    .option('--home <dir>', 'Lifeboat home (default: $DR_HOME or ./.lifeboat)')
    .version(versionLine(), '-V, --version', 'print the version of Lifeboat and of Node')
    // A usage mistake is one line, like every other error: commander's message, its "Did you
    // mean" and where to read more.
    .configureOutput({
      outputError: (message, write) =>
        write(
          `dr: ${message
            .replace(/^error: /, '')
            .replace(/\s*\n\s*/g, ' ')
            .trim()} (run \`dr --help\` for usage)\n`,
        ),
    })
    .exitOverride();
  const chosen = (Object.keys(COMMAND_MODULES) as CommandModule[]).filter(
    (m) => only === undefined || (COMMAND_MODULES[m] as readonly string[]).includes(only),
  );
  for (const register of await Promise.all(chosen.map((m) => LOADERS[m]()))) {
    register(program, exit);
  }
  return program;
}

export async function run(argv: string[]): Promise<number> {
  const exit: ExitState = { code: 0 };
  if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
    // Without loading every command module.
    process.stdout.write(`${versionLine()}\n`);
    return 0;
  }
  const program = await buildProgram(exit, commandOf(argv));
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
