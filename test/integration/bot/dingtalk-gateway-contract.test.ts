/**
 * The DingTalk stream gateway emulator checked with the real dingtalk-stream client: EVENT frames
 * answered by the library, unanswered callbacks pushed again after the timeout (and given up
 * after the last), and the SYSTEM disconnect before a close, after which the client reconnects.
 */
import { type DWClient, DWClient as DWClientClass } from 'dingtalk-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { streamClient } from '../../../bot/dingtalk/stream-client.js';
import { DingTalkGateway } from '../../fakes/dingtalk-gateway.js';
import { waitFor } from '../../helpers/wait-for.js';

const TOPIC = '/v1.0/im/bot/messages/get';

describe('DingTalk gateway emulator with the dingtalk-stream client', () => {
  let gateway: DingTalkGateway;
  let client: DWClient;
  /** messageIds the listener saw, in order, repeats included. */
  let seen: string[];
  /** While false, the listener does not answer (the answer is "lost"). */
  let answering: boolean;

  beforeEach(async () => {
    gateway = new DingTalkGateway({ repushAfterMs: 300, maxRepushes: 2, disconnectGraceMs: 50 });
    await gateway.start();
    seen = [];
    answering = true;
    client = streamClient(DWClientClass, {
      clientId: gateway.clientId,
      clientSecret: gateway.clientSecret,
      gatewayUrl: gateway.openUrl,
    });
    client.registerCallbackListener(TOPIC, (m) => {
      seen.push(m.headers.messageId);
      if (answering) client.socketCallBackResponse(m.headers.messageId, { ok: true });
    });
    void client.connect();
    await waitFor('the client to connect', () => gateway.connections === 1);
  });

  afterEach(async () => {
    client?.disconnect();
    await gateway?.stop();
  });

  it("answers an EVENT frame through the library's event handler", async () => {
    const id = gateway.event('chat_update_title', { chatId: 'cid-ops', title: 'ops' });
    const ack = await waitFor('the event answer', () => gateway.ackOf(id));
    expect(ack.data).toEqual({ status: 'SUCCESS' });
    expect(gateway.badAcks).toEqual([]);
  });

  it('pushes a callback lost on the wire again after the timeout, answered once', async () => {
    gateway.losePushes = 1;
    const id = gateway.robotMessage('dr status');
    const ack = await waitFor('the re-pushed callback answered', () => gateway.ackOf(id));
    expect(ack.data).toEqual({ response: { ok: true } });
    expect(gateway.repushed).toEqual([id]);
    expect(seen).toEqual([id]);
  });

  it('gives up on a callback never answered after the last re-push', async () => {
    answering = false;
    const id = gateway.robotMessage('dr status');
    await waitFor('two re-pushes', () => seen.length === 3);
    expect(seen).toEqual([id, id, id]);
    expect(gateway.repushed).toEqual([id, id]);
    expect(gateway.ackOf(id)).toBeUndefined();
  });

  it('sends SYSTEM disconnect before closing; the client reconnects and keeps working', async () => {
    expect(gateway.opens).toHaveLength(1);
    await gateway.disconnect('rebalance');
    await waitFor(
      'the client to reconnect',
      () => gateway.opens.length === 2 && gateway.connections === 1,
    );
    const id = gateway.robotMessage('dr status');
    expect(await waitFor('the answer', () => gateway.ackOf(id))).toMatchObject({ code: 200 });
  });
});
