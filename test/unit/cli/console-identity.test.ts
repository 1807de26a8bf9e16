// The console's identity: the login name; --as only in the demo home or with dr.yaml's opt-in.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { consoleIdentity } from '../../../cli/console-identity.js';

describe('consoleIdentity', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'lifeboat-console-'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });
  const config = (allowAs = false, demo = false) => ({
    console: { allowAs },
    apps: demo ? ({ 'demo-shop': {} } as never) : {},
  });

  it('is the lower-cased login name, whatever dr.yaml names as admin', () => {
    expect(consoleIdentity({ config: config(), home, login: 'Carol' })).toEqual({
      person: 'carol',
      switchAllowed: false,
    });
    expect(consoleIdentity({ config: config(), home, login: 'carol', as: 'carol' })).toEqual({
      person: 'carol',
      switchAllowed: false,
    });
  });

  it('refuses --as with the remedy, a bad --as name, and a login name that cannot be an identity', () => {
    expect(() => consoleIdentity({ config: config(), home, login: 'carol', as: 'alice' })).toThrow(
      /--as alice is refused: the console acts as the operating-system user who runs it \(console:carol\)/,
    );
    expect(() =>
      consoleIdentity({ config: config(), home, login: 'carol', as: 'al ice;' }),
    ).toThrow(/is not a person's name/);
    expect(() => consoleIdentity({ config: config(), home, login: 'jörg' })).toThrow(
      /cannot be a console identity/,
    );
  });

  it('allows --as with the opt-in, or in the demo home only with its files there, and says why', async () => {
    expect(
      consoleIdentity({ config: config(true), home, login: 'carol', as: 'alice' }).note,
    ).toMatch(/allowed by console.allowAs/);
    expect(() =>
      consoleIdentity({ config: config(false, true), home, login: 'carol', as: 'alice' }),
    ).toThrow(/refused/);
    await mkdir(join(home, 'demo'));
    expect(
      consoleIdentity({ config: config(false, true), home, login: 'carol', as: 'alice' }),
    ).toMatchObject({
      person: 'alice',
      switchAllowed: true,
      note: expect.stringMatching(/demo home only/),
    });
    // Where --as is allowed, switching inside the console is too (and only there).
    expect(consoleIdentity({ config: config(false, true), home, login: 'carol' })).toEqual({
      person: 'carol',
      switchAllowed: true,
    });
    expect(consoleIdentity({ config: config(true), home, login: 'carol' }).switchAllowed).toBe(
      true,
    );
  });
});
