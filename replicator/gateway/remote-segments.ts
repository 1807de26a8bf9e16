/** Sealed segments an app's store does not hold on disk, read from elsewhere (the bucket) when needed. */
export interface RemoteSegments {
  /** Each segment's size in bytes. */
  readonly sizes: ReadonlyMap<number, number>;
  /** `length` bytes at `offset` of a segment (into `into` when given); throws when they are gone. */
  read(segment: number, offset: number, length: number, into?: Buffer): Promise<Buffer>;
}

/** Neighbouring bytes at `offset` of a remote segment into `parts`, filled in order. */
export async function readRemoteParts(
  remote: RemoteSegments,
  segment: number,
  offset: number,
  parts: Buffer[],
): Promise<void> {
  const span = await remote.read(
    segment,
    offset,
    parts.reduce((n, b) => n + b.length, 0),
  );
  let at = 0;
  for (const p of parts) at += span.copy(p, 0, at, at + p.length);
}
