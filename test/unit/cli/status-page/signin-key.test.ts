import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  formToken,
  loadSigninKey,
  newClaim,
  SIGNIN_KEY_FILE,
  signClaim,
  verifyClaim,
} from '../../../../cli/status-page/signin-key.js';

describe('status page sign-in tokens', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('makes the key once, readable by its owner only, and reads the same key again', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-signin-'));
    const a = await loadSigninKey(dir);
    const b = await loadSigninKey(dir);
    expect(a.equals(b)).toBe(true);
    expect(a.length).toBe(32);
    expect((await stat(join(dir, SIGNIN_KEY_FILE))).mode & 0o777).toBe(0o600);
  });

  it('refuses a key file that is not one, naming it and the remedy', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-signin-'));
    await writeFile(join(dir, SIGNIN_KEY_FILE), 'hello\n');
    await expect(loadSigninKey(dir)).rejects.toThrow(/is not a sign-in key .*/);
  });

  it('accepts only its own, unexpired tokens of the kind asked', () => {
    const key = Buffer.alloc(32, 1);
    const other = Buffer.alloc(32, 2);
    const ticket = signClaim(key, newClaim('ticket', 'alice', 1000, 60_000));
    expect(verifyClaim(key, ticket, 'ticket', 2000)?.person).toBe('alice');
    expect(verifyClaim(key, ticket, 'session', 2000)).toBeUndefined(); // a ticket is no session
    expect(verifyClaim(other, ticket, 'ticket', 2000)).toBeUndefined(); // another home's key
    expect(verifyClaim(key, ticket, 'ticket', 61_000)).toBeUndefined(); // expired
    const [body, sig] = ticket.split('.');
    const forged = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(body ?? '', 'base64url').toString()),
        person: 'bob',
      }),
    ).toString('base64url');
    expect(verifyClaim(key, `${forged}.${sig}`, 'ticket', 2000)).toBeUndefined();
    expect(verifyClaim(key, 'not-a-token', 'ticket', 2000)).toBeUndefined();
    expect(formToken(key, ticket)).not.toBe(formToken(key, `${ticket}x`));
  });
});
