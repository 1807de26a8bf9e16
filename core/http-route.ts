// The one shape of an HTTP route, shared by the control plane's server and the chat surfaces.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Handles a request and returns true, or returns false to let the next route try. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
