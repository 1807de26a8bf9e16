import type { DWClient } from 'dingtalk-stream';

type DWClientClass = typeof DWClient;

/**
 * A `DWClient` whose connections/open request goes to DINGTALK_GATEWAY_URL (the library hard-codes
 * api.dingtalk.com). Everything else — the WebSocket, pings, acks, reconnects — is the library's.
 */
export function streamClient(
  Base: DWClientClass,
  o: {
    clientId: string;
    clientSecret: string;
    gatewayUrl: string;
    /** Told each failed connections/open (the library retries every second, silently). */
    onOpenFailed?: (err: Error) => void;
  },
): DWClient {
  class GatewayClient extends Base {
    override async getEndpoint(): Promise<this> {
      try {
        return await this.open();
      } catch (err) {
        o.onOpenFailed?.(err as Error);
        throw err;
      }
    }

    private async open(): Promise<this> {
      const res = await fetch(o.gatewayUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          clientId: this.config.clientId,
          clientSecret: this.config.clientSecret,
          ua: 'lifeboat',
          subscriptions: this.config.subscriptions,
        }),
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`DingTalk connections/open answered ${res.status}`);
      const { endpoint, ticket } = (await res.json()) as { endpoint?: string; ticket?: string };
      if (!endpoint || !ticket)
        throw new Error('DingTalk connections/open gave no endpoint or ticket');
      // dw_url is private in the library's types; getEndpoint's whole job is to set it.
      (this as unknown as { dw_url: string }).dw_url =
        `${endpoint}?ticket=${encodeURIComponent(ticket)}`;
      return this;
    }
  }
  return new GatewayClient({ clientId: o.clientId, clientSecret: o.clientSecret, keepAlive: true });
}
