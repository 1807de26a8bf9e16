import { describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import {
  awaitsTakeover,
  redirectTarget,
  sendAcross,
} from '../../../../replicator/transport/send-across.js';

const down = (address: string) =>
  new DrError(`cannot reach the gateway at ${address}`, { code: 'gateway_unreachable' });
const elsewhere = (holder: string) =>
  Object.assign(new DrError(`served by ${holder}`, { code: 'app_elsewhere' }), {
    redirect: holder,
  });

/** Gateways that answer as the map says: 'ok', 'down', or the address they redirect to. */
function gateways(answers: Record<string, string>) {
  const asked: string[] = [];
  const send = async (address: string) => {
    asked.push(address);
    const a = answers[address] ?? 'down';
    if (a === 'ok') return `answer of ${address}`;
    if (a === 'down') throw down(address);
    throw elsewhere(a);
  };
  return { asked, send };
}

describe('sendAcross', () => {
  it('goes on to the next gateway when one cannot be reached', async () => {
    const g = gateways({ b: 'ok' });
    expect(await sendAcross(['a', 'b'], 'POST x', g.send)).toEqual({
      res: 'answer of b',
      address: 'b',
    });
    expect(g.asked).toEqual(['a', 'b']);
  });

  it('follows a redirect to the holder, even one not listed', async () => {
    const g = gateways({ a: 'c', c: 'ok' });
    expect((await sendAcross(['a', 'b'], 'POST x', g.send)).address).toBe('c');
    expect(g.asked).toEqual(['a', 'c']);
  });

  it('refuses a redirect that comes back, naming the chain', async () => {
    const self = gateways({ a: 'a' });
    await expect(sendAcross(['a'], 'POST x', self.send)).rejects.toThrow(
      /redirect POST x in a loop \(a -> a\)/,
    );
    const pair = gateways({ a: 'b', b: 'a' });
    await expect(sendAcross(['a', 'b'], 'POST x', pair.send)).rejects.toMatchObject({
      code: 'gateway_refused',
      message: expect.stringMatching(/a -> b, b -> a/),
    });
  });

  it('says the holder cannot be reached when every gateway redirects to a dead one (a retry waits for the takeover)', async () => {
    const g = gateways({ b: 'a' });
    await expect(sendAcross(['a', 'b'], 'POST x', g.send)).rejects.toMatchObject({
      code: 'gateway_unreachable',
      message: expect.stringMatching(/redirect to a, which cannot be reached/),
    });
    expect(g.asked).toEqual(['a', 'b']);
    expect(awaitsTakeover(await sendAcross(['a', 'b'], 'POST x', g.send).catch((e) => e))).toBe(
      true,
    );
  });

  it('does not call gateways that are all down a takeover', async () => {
    const g = gateways({});
    const err = await sendAcross(['a', 'b'], 'POST x', g.send).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'gateway_unreachable' });
    expect(awaitsTakeover(err)).toBe(false);
  });

  it('passes any other refusal on at once', async () => {
    const send = async () => {
      throw new DrError('no such app', { code: 'app_unknown' });
    };
    await expect(sendAcross(['a', 'b'], 'GET x', send)).rejects.toMatchObject({
      code: 'app_unknown',
    });
  });

  it('reads only https Location headers with a port', () => {
    expect(redirectTarget('https://10.0.0.6:7443/v1/apps/web/batches')).toBe('10.0.0.6:7443');
    expect(redirectTarget('http://10.0.0.6:7443/x')).toBeUndefined();
    expect(redirectTarget('not a url')).toBeUndefined();
    expect(redirectTarget(undefined)).toBeUndefined();
  });
});
