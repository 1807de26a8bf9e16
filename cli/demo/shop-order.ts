// demo-shop's order and how its `sqlite3` rows read; only Node's own modules, like the scripts.

export interface Order {
  id: number;
  item: string;
  qty: number;
  cents: number;
  createdMs: number;
}

/** An order from a `sqlite3 -batch` row `id|item|qty|cents|created_ms`; null for no row. */
export function orderFromRow(row: string | undefined): Order | null {
  if (!row) return null;
  const [id, item, qty, cents, created] = row.split('|');
  return {
    id: Number(id),
    item: item ?? '',
    qty: Number(qty),
    cents: Number(cents),
    createdMs: Number(created),
  };
}
