/** A published layer as the size-cap policy sees it. */
export interface LayerUsage {
  key: string;
  sizeBytes: number;
  /** Epoch ms of the last execution that used it (or its creation). */
  lastUsedAt: number;
}

/**
 * Least-recently-used eviction under a size cap: the layers to remove, oldest use first, until the
 * rest fit in `maxBytes`. Layers used within `minIdleMs` are never chosen (an execution that
 * resolved one a moment ago is about to mount it), nor are the `keep` keys; so the cache may stay
 * above the cap for a while when everything in it is in use.
 */
export function chooseEvictions(layers: readonly LayerUsage[], options: { maxBytes: number; minIdleMs: number; now: number; keep?: readonly string[] }): LayerUsage[] {
  let total = layers.reduce((sum, layer) => sum + layer.sizeBytes, 0);
  if (total <= options.maxBytes) return [];
  const keep = new Set(options.keep ?? []);
  const candidates = layers
    .filter((layer) => !keep.has(layer.key) && options.now - layer.lastUsedAt >= options.minIdleMs)
    .sort((a, b) => a.lastUsedAt - b.lastUsedAt || a.key.localeCompare(b.key));
  const chosen: LayerUsage[] = [];
  for (const layer of candidates) {
    if (total <= options.maxBytes) break;
    chosen.push(layer);
    total -= layer.sizeBytes;
  }
  return chosen;
}
