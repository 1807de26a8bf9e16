import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, type TestContext } from 'vitest';
import { buildProgram } from '../../../cli/main.js';
import { skipBecause } from '../../helpers/skip.js';

const dir = fileURLToPath(new URL('../../../deploy/systemd/', import.meta.url));
const unit = join(dir, 'lifeboat-agent@.service');

describe('the systemd units', () => {
  it('every unit passes systemd-analyze verify without a warning', async (ctx: TestContext) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0)
      skipBecause(ctx, 'systemd-analyze is not installed (apt-get install -y systemd)');
    const units = (await readdir(dir)).filter((f) => f.endsWith('.service'));
    expect(units.sort()).toEqual([
      'lifeboat-agent@.service',
      'lifeboat-gateway.service',
      'lifeboat-serve.service',
      'lifeboat-worker.service',
    ]);
    const tmp = await mkdtemp(join(tmpdir(), 'lifeboat-unit-'));
    try {
      for (const u of units) await copyFile(join(dir, u), join(tmp, u));
      await symlink('lifeboat-agent@.service', join(tmp, 'lifeboat-agent@web.service'));
      const names = units.map((u) => u.replace('@.service', '@web.service'));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...names], {
        cwd: tmp,
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.stderr + r.stdout).toBe('');
      expect(r.status).toBe(0);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('runs each DR-site part as the dr command of that name, as the lifeboat user', async () => {
    const program = await buildProgram({ code: 0 });
    for (const part of ['gateway', 'worker', 'serve']) {
      const text = await readFile(join(dir, `lifeboat-${part}.service`), 'utf8');
      const exec = /^ExecStart=(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
      expect(exec.slice(0, 3)).toEqual(['/usr/bin/node', '/opt/lifeboat/bin/dr.js', part]);
      const cmd = program.commands.find((c) => c.name() === part);
      const known = new Set(cmd?.options.map((o) => o.long));
      for (const a of exec.slice(3).filter((x) => x.startsWith('--')))
        expect(known, `${part} ${a}`).toContain(a);
      expect(text).toMatch(/^User=lifeboat$/m);
      expect(text).toMatch(/^ReadWritePaths=\/var\/lib\/lifeboat$/m);
    }
  });

  it('starts `dr agent --app <instance>` with options the agent takes', async () => {
    const text = await readFile(unit, 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
    expect(exec.slice(0, 5)).toEqual([
      '/usr/bin/node',
      '/opt/lifeboat/bin/dr.js',
      'agent',
      '--app',
      '%i',
    ]);
    const agent = (await buildProgram({ code: 0 })).commands.find((c) => c.name() === 'agent');
    const options = new Set(agent?.options.map((o) => o.long));
    expect(options).toContain('--app');
    expect(options).toContain('--metrics'); // what the unit's comment suggests in LIFEBOAT_AGENT_ARGS
    expect(text).toMatch(/^Environment=DR_HOME=\/var\/lib\/lifeboat$/m);
    expect(text).toMatch(/^User=root$/m); // tracefs and fsfreeze
    expect(text).not.toMatch(/^ProtectKernelTunables=yes/m); // would make /sys, and tracefs, read-only
  });
});
