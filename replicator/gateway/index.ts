/**
 * The DR-site gateway: takes the agents' encrypted batches over mutual TLS, keeps them durable
 * and commits recovery points, and serves points and records to recovery.
 *
 * gateway-server.ts composes the HTTP side from its parts: gateway-routes.ts (the /v1 routes, on
 * core/http-router), protection-book.ts (protected / paused / failed over), agent-leases.ts (one
 * agent per app, takeover), batch-ingest.ts (batches and the free-space reserve), point-commit.ts
 * (commit, then retention and GC), app-status.ts, record-stream.ts, request-body.ts and
 * http-status.ts (error code to HTTP status). The parts see replicas only through
 * gateway-store.ts; block-store.ts is the file store behind it: app-store.ts per app, over
 * segment-log.ts (segment files; segment-read.ts, segment-errors.ts), catalog.ts,
 * point-index.ts, retention.ts, garbage-collector.ts, commit-checks.ts and settled-copy.ts (its
 * files copied elsewhere without holding up batches); block-references.ts resolves blocks sent
 * as references to the records they repeat. object-store.ts keeps the points in a bucket as well
 * (object-bucket.ts, bucket-mirror.ts, segment-upload.ts: segment bytes as chunks, several at
 * once, read back into reused buffer-pool.ts buffers); with several gateways on one bucket, leased-store.ts serves only the apps whose Redis
 * lease this gateway holds (gateway-leases.ts), redirects the others' writes and reads their
 * committed points from the bucket (bucket-reader.ts). The wire shapes are in
 * ../transport/protocol.ts.
 */

export { BlockStore } from './block-store.js';
export {
  type BatchReceived,
  createGateway,
  type Gateway,
  splitHostPort,
} from './gateway-server.js';
export type { AppReplica, GatewayStore } from './gateway-store.js';
