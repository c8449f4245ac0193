/**
 * Kubernetes-style quantities, as node `resources` carry them (one definition fits both sandbox
 * drivers): memory in bytes with binary or decimal suffixes, CPU in cores or millicores.
 */

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

const QUANTITY = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const QUANTITY_FACTORS: Record<string, number> = {
  '': 1,
  Ki: 1024,
  Mi: MIB,
  Gi: GIB,
  Ti: 1024 * GIB,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

/**
 * Bytes of a Kubernetes memory quantity (`256Mi`, `1G`, `134217728`), or `undefined` when it is
 * not one. Requests carry Kubernetes quantities so one node definition fits both drivers.
 */
export function parseMemoryQuantity(quantity: string): number | undefined {
  const match = QUANTITY.exec(quantity.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * QUANTITY_FACTORS[match[2] ?? '']);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}

/** Parses a Kubernetes CPU quantity (`500m`, `1`, `0.25`) into millicores; undefined when invalid. */
export function parseCpuQuantity(quantity: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(m?)$/.exec(quantity.trim());
  if (!match) return undefined;
  const millis = match[2] === 'm' ? Number(match[1]) : Number(match[1]) * 1000;
  return Number.isFinite(millis) && millis >= 1 ? Math.ceil(millis) : undefined;
}

