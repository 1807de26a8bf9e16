/** The app and volume a request names, as the store holds them (404 when it holds none). */
import { DrError } from '../../core/errors.js';
import type { VolumeMeta } from './block-store.js';
import type { AppReplica, GatewayStore } from './gateway-store.js';
import { HttpError } from './http-status.js';

export function heldApp(store: Pick<GatewayStore, 'app'>, app: string): AppReplica {
  const a = store.app(app);
  if (!a) {
    throw new DrError(`the gateway holds no replica of app ${JSON.stringify(app)}`, {
      code: 'app_unknown',
      subject: app,
      remedy: `start replicating it with \`dr agent --app ${app}\``,
    });
  }
  return a;
}

export function heldVolume(a: Pick<AppReplica, 'volumes'>, name: string): VolumeMeta {
  const v = a.volumes().find((x) => x.name === name);
  if (!v) {
    throw new HttpError(
      404,
      new DrError(`no volume ${JSON.stringify(name)} in this app`, {
        code: 'bad_request',
        subject: name,
        remedy: `use one of: ${a
          .volumes()
          .map((x) => x.name)
          .join(', ')}`,
      }),
    );
  }
  return v;
}
