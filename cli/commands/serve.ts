import type { Command } from 'commander';
import { errorMessage } from '../../core/errors.js';
import { settleWithin } from '../../core/settle-within.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { createHttpServer, healthRoute, parseListen, type Route } from '../http-server.js';
import { openRedis, redisPrefix, requireRedisUrl } from '../recovery-connect.js';
import { createServeRoutes } from '../status-page/serve-routes.js';
import { stopSignal } from '../stop-signal.js';
import { accessRuleFrom, requireTokenBeyondLoopback } from '../web/access-rule.js';

export const DEFAULT_LISTEN = '127.0.0.1:8787';

export function registerServe(program: Command, exit: ExitState): void {
  program
    .command('serve')
    .description(
      'run the engine and the chat surfaces (Slack, DingTalk) and serve /slack/events, /healthz, the status page and /metrics',
    )
    .option('--listen <host:port>', 'address of the HTTP server', DEFAULT_LISTEN)
    .option('--json', 'print where it serves and which surfaces are on as one JSON line')
    .addHelpText(
      'after',
      `
Surfaces start when their credentials are set (see docs/chat.md):
  Slack     SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET (HTTP receiver) or SLACK_APP_TOKEN (Socket Mode),
            SLACK_API_URL to send Web API calls elsewhere
  DingTalk  DINGTALK_CLIENT_ID + DINGTALK_CLIENT_SECRET, DINGTALK_API_URL, DINGTALK_GATEWAY_URL,
            DINGTALK_CARD_TEMPLATE_ID for interactive cards
The status page (/, /api/status) and /metrics answer this machine only, unless DR_STATUS_TOKEN
is set: then remote readers present it (see docs/status-page.md). A --listen address beyond
loopback is refused without DR_STATUS_TOKEN.
Needs REDIS_URL. Stops on SIGINT or SIGTERM within DR_STOP_TIMEOUT (10 s), whatever is unreachable.`,
    )
    .action(async (opts: { listen: string; json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const { host } = parseListen(opts.listen); // a bad --listen fails before anything starts
        const config = await ctx.config();
        const redisUrl = requireRedisUrl(ctx.env);
        const prefix = redisPrefix(ctx.env);
        const log = ctx.log.child({ part: 'serve' });
        const access = accessRuleFrom(ctx.env); // a bad DR_STATUS_TOKEN fails before anything starts
        requireTokenBeyondLoopback(opts.listen, host, access);
        const stopping = stopSignal({
          part: 'dr serve',
          abandons:
            'events and notices not yet acknowledged stay in Redis, where the next engine and surface take them over',
          env: ctx.env,
        });
        (await openRedis(ctx.env, 'lifeboat-serve-probe')).disconnect(); // Redis answers, or a clear error
        const { createEngine } = await import('../../engine/index.js');
        const { startSurfaces } = await import('../../bot/start-surfaces.js');
        const engine = await createEngine({ home: ctx.home, config, redisUrl, prefix, log });
        const closers: [string, () => Promise<void>][] = [['engine', () => engine.close()]];
        const closeAll = async () => {
          for (const [name, close] of closers.reverse()) {
            log.debug({ closing: name }, 'stopping');
            const closed = await settleWithin(
              close().catch((err: unknown) =>
                log.warn({ err: errorMessage(err), part: name }, 'stopping a part failed'),
              ),
              3000,
            );
            // A part waiting on an unreachable Redis or chat service: the next one goes on.
            if (!closed) log.warn({ part: name }, 'stopping a part took over 3 s; left behind');
          }
        };
        try {
          await engine.start();
          const surfaces = await startSurfaces({
            plane: engine,
            connect: (name) => openRedis(ctx.env, name),
            env: ctx.env,
            prefix,
            adminTargets: config.channels.admin,
            log,
          });
          closers.push(['chat surfaces', () => surfaces.close()]);
          const statusRedis = await openRedis(ctx.env, 'lifeboat-serve-status');
          closers.push(['status connection', async () => statusRedis.disconnect()]);
          const status = await createServeRoutes({
            config,
            redis: statusRedis,
            prefix,
            access,
            plane: engine,
            home: ctx.home,
            log,
          });
          closers.push(['status page', async () => status.close()]);
          const routes: Route[] = [healthRoute, ...surfaces.routes, ...status.routes];
          const server = await createHttpServer({ listen: opts.listen, routes, log });
          closers.push(['http server', () => server.close()]);
          if (opts.json) {
            printJson({
              url: server.url,
              address: server.address,
              statusPage: `${server.url}/`,
              metrics: `${server.url}/metrics`,
              surfaces: surfaces.lines,
            });
          } else {
            ctx.out(
              `serving on ${server.url} (/healthz${surfaces.started.some((s) => s.name === 'slack' && s.routes.length > 0) ? ', /slack/events' : ''})`,
            );
            ctx.out(
              `status page at ${server.url}/ and Prometheus metrics at ${server.url}/metrics`,
            );
            for (const line of surfaces.lines) ctx.out(line);
          }
        } catch (err) {
          await closeAll();
          stopping.dispose();
          throw err;
        }
        await stopping.requested;
        stopping.onSecond(() => {
          ctx.out('stopped (at once, on a second signal)');
          process.exit(0);
        });
        await closeAll();
        stopping.dispose();
        ctx.out('stopped');
        return 0;
      }),
    );
}
