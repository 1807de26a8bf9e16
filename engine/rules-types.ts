/** The json-rules-engine shapes the engine builds, named once (the library does not export them). */
export interface LeafCondition {
  fact: string;
  operator: string;
  value: unknown;
  params?: Record<string, unknown>;
}
export type NestedCondition =
  | LeafCondition
  | { all: NestedCondition[] }
  | { any: NestedCondition[] }
  | { not: NestedCondition };
