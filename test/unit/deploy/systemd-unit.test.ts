import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, type TestContext } from 'vitest';
import { buildProgram } from '../../../cli/main.js';
import { skipBecause } from '../../helpers/skip.js';

const unit = fileURLToPath(
  new URL('../../../deploy/systemd/lifeboat-agent@.service', import.meta.url),
);

describe('the agent’s systemd unit', () => {
  it('passes systemd-analyze verify without a warning', async (ctx: TestContext) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0)
      skipBecause(ctx, 'systemd-analyze is not installed (apt-get install -y systemd)');
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-unit-'));
    try {
      await copyFile(unit, join(dir, 'lifeboat-agent@.service'));
      await symlink('lifeboat-agent@.service', join(dir, 'lifeboat-agent@web.service'));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', 'lifeboat-agent@web.service'], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.stderr + r.stdout).toBe('');
      expect(r.status).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
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
    const agent = buildProgram({ code: 0 }).commands.find((c) => c.name() === 'agent');
    const options = new Set(agent?.options.map((o) => o.long));
    expect(options).toContain('--app');
    expect(options).toContain('--metrics'); // what the unit's comment suggests in LIFEBOAT_AGENT_ARGS
    expect(text).toMatch(/^Environment=DR_HOME=\/var\/lib\/lifeboat$/m);
    expect(text).toMatch(/^User=root$/m); // tracefs and fsfreeze
    expect(text).not.toMatch(/^ProtectKernelTunables=yes/m); // would make /sys, and tracefs, read-only
  });
});
