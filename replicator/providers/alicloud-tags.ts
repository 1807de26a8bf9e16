// The lifeboat-op tag on ECS resources: its key, reading tag lists, building tag filters.
/** The tag every resource of an operation carries: lifeboat-op=<opId>. */
export const OP_TAG = 'lifeboat-op';

export type TagList = { tag?: { tagKey?: string; tagValue?: string }[] } | undefined;
export const tagMap = (t: TagList) =>
  new Map((t?.tag ?? []).map((x) => [x.tagKey ?? '', x.tagValue ?? '']));

export function tagFilter([key, value]: [string, string?]): { key: string; value?: string } {
  return value === undefined ? { key } : { key, value };
}
