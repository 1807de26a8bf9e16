// The rig of the ECS contract tests: one emulator for the file with a key made for the run, and
// clients we did not write calling it (pop-core, the ECS SDK), with ECS's refusals read back.
// Its state is exported as live bindings, set before the file's tests.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ecs from '@alicloud/ecs20140526';
import { $OpenApiUtil } from '@alicloud/openapi-core';
import RPCClient from '@alicloud/pop-core';
import { afterAll, beforeAll } from 'vitest';
import { type EcsEmulator, startEcsEmulator } from '../fakes/ecs-emulator.js';

export type Body = Record<string, unknown>;
type Params = Record<string, string | number | boolean>;
interface Refusal {
  status?: number;
  code: string;
  requestId: string;
}
export interface Style {
  name: string;
  call(action: string, params: Params): Promise<Body>;
}

type EcsClass = typeof Ecs.default;
const EcsClient: EcsClass = (Ecs as { default?: EcsClass }).default ?? (Ecs as unknown as EcsClass);

let dir: string;
export let emu: EcsEmulator;
export let keyId: string;
export let secret: string;

export function popCore(method: 'GET' | 'POST', key = secret): Style {
  const client = new RPCClient({
    accessKeyId: keyId,
    accessKeySecret: key,
    endpoint: `http://${emu.endpoint}`,
    apiVersion: '2014-05-26',
  });
  return {
    name: `pop-core RPC HMAC-SHA1 ${method}`,
    call: async (action, params) => (await client.request(action, params, { method })) as Body,
  };
}

/** The ECS SDK's own client, calling through the same path its typed methods use. */
export function sdk(signatureAlgorithm: string, key = secret): Style {
  const client = new EcsClient(
    new $OpenApiUtil.Config({
      accessKeyId: keyId,
      accessKeySecret: key,
      regionId: emu.state.regionId,
      endpoint: emu.endpoint,
      protocol: 'http',
      signatureAlgorithm,
    }),
  );
  return {
    name: `ecs20140526 ${signatureAlgorithm}`,
    call: async (action, params) => {
      const query = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
      const r = (await client.callApi(
        new $OpenApiUtil.Params({
          action,
          version: '2014-05-26',
          protocol: 'HTTP',
          pathname: '/',
          method: 'POST',
          authType: 'AK',
          style: 'RPC',
          reqBodyType: 'formData',
          bodyType: 'json',
        }),
        new $OpenApiUtil.OpenApiRequest({ query }),
        {} as never,
      )) as { body: Body };
      return r.body;
    },
  };
}

/** What a client threw, in ECS's terms: HTTP status (where the client keeps it), Code, RequestId. */
export async function refusal(p: Promise<unknown>): Promise<Refusal> {
  try {
    await p;
  } catch (err) {
    const e = err as {
      statusCode?: number;
      code?: string;
      data?: { Code?: string; RequestId?: string; statusCode?: number };
    };
    const status = e.statusCode ?? e.data?.statusCode;
    return {
      ...(status !== undefined ? { status } : {}),
      code: e.data?.Code ?? e.code ?? '',
      requestId: e.data?.RequestId ?? '',
    };
  }
  throw new Error('expected ECS to refuse the call');
}

export const REQUEST_ID = /^[0-9A-F-]{36}$/;

/** Registers the hooks that start the emulator before the calling file's tests and stop it after. */
export function useEcsContractEmulator(): void {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-ecs-contract-'));
    keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
    secret = randomBytes(22).toString('base64url');
    emu = await startEcsEmulator({
      accessKeyId: keyId,
      accessKeySecret: secret,
      dataDir: dir,
      timings: { createDiskMs: 150, attachMs: 100, pendingMs: 150, startingMs: 150 },
    });
  });

  afterAll(async () => {
    await emu?.close();
    await rm(dir, { recursive: true, force: true });
  });
}
