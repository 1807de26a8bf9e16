/**
 * The demo's second app, demo-web (the shop's web front, on its own small volume), and the plan
 * `shop` that recovers demo-shop first, then tells the web front which shop to show, then demo-web.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ChildSpec } from '../up/supervisor.js';
import { shellQuote as q, demoScript as script } from './demo-files.js';
import { writeFenceScript, writeHookScript } from './demo-scripts.js';
import { WEB_IMAGE_SIZE } from './web-views.js';

export const WEB_APP = 'demo-web';
export const DEMO_PLAN = 'shop';

export interface WebPart {
  /** demo-web's entry in dr.yaml. */
  app: Record<string, unknown>;
  child: Omit<ChildSpec, 'env'> & { env: NodeJS.ProcessEnv };
  notes: string[];
}

/**
 * Makes (or brings back) demo-web: its 1 MiB volume of page views (an image file on every
 * machine: scanned, quiesced by its own hook), its scripts, and plans/shop.yaml when the home has
 * none. `shopState` is demo-shop's state file at the source (its address).
 */
export async function prepareWeb(
  home: string,
  dir: string,
  runDir: string,
  shopState: string,
): Promise<WebPart> {
  const image = join(dir, 'web.img');
  if (!existsSync(image)) {
    const fh = await open(image, 'w', 0o600);
    await fh.truncate(WEB_IMAGE_SIZE);
    await fh.close();
  }
  const state = join(runDir, 'demo-web.json');
  const upstream = join(dir, 'web-upstream');
  const hook = await writeHookScript(dir, state, WEB_APP, 'web-hook.sh');
  const fence = await writeFenceScript(dir, state, { device: image }, WEB_APP, 'web-fence.sh');
  const drServer = await writeWebDrServer(dir, upstream, shopState);
  const planHook = await writePlanHook(home, dir, upstream, shopState);
  const planFile = join(home, 'plans', `${DEMO_PLAN}.yaml`);
  if (!existsSync(planFile)) await writePlan(planFile, planHook);
  const node = q(process.execPath);
  return {
    app: {
      tier: 'prod',
      blockSize: '16KiB',
      volumes: [{ name: 'data', path: image }],
      quiesce: { freeze: `${q(hook)} freeze`, thaw: `${q(hook)} thaw`, timeout: '5s' },
      fence: `${q(fence)} fence`,
      unfence: `${q(fence)} unfence`,
      fenceTimeout: '30s',
      provider: {
        kind: 'local',
        start: `${q(drServer)} ${node} ${q(script('web-front'))}`,
        check: `${node} ${q(script('web-check'))} --state ${q(state)}`,
        checkTimeout: '60s',
      },
      owners: ['alice'],
      rpoObjective: '60s',
    },
    child: {
      name: WEB_APP,
      command: process.execPath,
      args: [
        script('web-front'),
        ...['--image', image, '--state', state, '--upstream', upstream],
        ...['--shop-state', shopState, '--rate', '2'],
      ],
      env: {},
      logFile: join(runDir, 'demo-web.log'),
      ready: /demo-web serving at/,
    },
    notes: [
      `  demo-web           the shop's web front, page views in the image file ${image}; its hook + scanning`,
      `  plan shop          demo-shop, then a hook (which shop the web front shows), then demo-web:`,
      '                     `npx dr plan explain shop`, `npx dr report shop`',
    ],
  };
}

/** plans/shop.yaml: the database first, the hook, then the web front; plan-consistent points. */
async function writePlan(file: string, planHook: string): Promise<void> {
  // JSON's double-quoted strings are YAML's too: the hook's path may hold any character.
  const text = `# The demo's recovery plan, written by \`dr up --demo\` (docs/plans.md); yours to change.
description: the demo shop, its orders (demo-shop) first, then its web front (demo-web)
points: plan-consistent
maxSkew: 1m
groups:
  - apps: [demo-shop]
    then:
      # Tells the web front which demo-shop to show: the DR site's after a failover.
      - hook: ${JSON.stringify(q(planHook))}
        timeout: 30s
  - apps: [demo-web]
`;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text);
}

/**
 * demo-web at the DR site (the local provider's start command): after a failover, the web front
 * on the recovered volume, showing the shop the plan's hook chose. A drill only checks the copy.
 */
async function writeWebDrServer(dir: string, upstream: string, shopState: string) {
  const path = join(dir, 'web-dr-server.sh');
  const text = `#!/bin/sh
# demo-web at the DR site, written by \`dr up --demo\`: NODE WEB_FRONT_JS, with DR_VOLUME_DATA.
[ "$DR_MODE" = failover ] || exec sleep infinity
here=$(dirname "$DR_VOLUME_DATA")
exec "$1" "$2" --image "$DR_VOLUME_DATA" --state "$here/web-dr.json" --upstream ${q(upstream)} --shop-state ${q(shopState)} --rate 2
`;
  await writeFile(path, text, { mode: 0o700 });
  await chmod(path, 0o700);
  return path;
}

/**
 * The plan's hook between its groups: it writes into UPSTREAM which demo-shop the web front shows.
 * After a failover that is the shop running at the DR site (its state file under recovery/, its
 * process alive); otherwise (a drill: the DR copy is only checked) the shop at the source.
 */
async function writePlanHook(home: string, dir: string, upstream: string, shopState: string) {
  const path = join(dir, 'plan-hook.sh');
  const text = `#!/bin/sh
# The plan shop's hook after demo-shop, written by \`dr up --demo\`: which demo-shop demo-web shows.
choice=
for f in ${q(join(home, 'recovery'))}/*/shop-dr.json; do
  [ -e "$f" ] || continue
  pid=$(sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p' "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then choice=$f; fi
done
where="at the DR site"
[ -n "$choice" ] || { choice=${q(shopState)}; where="at the source"; }
printf '%s\\n' "$choice" > ${q(`${upstream}.tmp`)} && mv ${q(`${upstream}.tmp`)} ${q(upstream)} || exit 1
url=$(sed -n 's/.*"url":"\\([^"]*\\)".*/\\1/p' "$choice" 2>/dev/null)
echo "demo-web shows the demo-shop $where: \${url:-not running yet} ($choice)"
`;
  await writeFile(path, text, { mode: 0o700 });
  await chmod(path, 0o700);
  return path;
}
