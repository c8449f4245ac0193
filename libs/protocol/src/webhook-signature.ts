// Receivers verify deliveries with this file alone (the client SDK will re-export it), so it
// depends on node:crypto only.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header carrying a delivery's signature: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`. */
export const SIGNATURE_HEADER = 'podflow-signature';

/** How far a signature's timestamp may be from the receiver's clock, in seconds, by default. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * The `podflow-signature` value for `body` sent at `timestampSeconds`: one `v1` (HMAC-SHA256 of
 * `<t>.<body>`, hex) per secret. Pass the current secret and, during a rotation's grace period,
 * the previous one, so receivers still holding the old secret keep accepting deliveries.
 */
export function signatureHeader(secrets: readonly string[], body: string, timestampSeconds: number): string {
  if (secrets.length === 0) throw new Error('signatureHeader needs at least one secret: the current one, then the previous one during a rotation');
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new Error(`signatureHeader takes whole Unix seconds, got ${timestampSeconds}; pass Math.floor(Date.now() / 1000)`);
  }
  return [`t=${timestampSeconds}`, ...secrets.map((secret) => `v1=${sign(secret, body, timestampSeconds)}`)].join(',');
}

/**
 * Whether `header` signs `body` with `secret`, at a time within `toleranceSeconds` of
 * `nowSeconds` (stale or future timestamps are refused so a captured delivery cannot be
 * replayed later). `body` must be the raw request body, before any JSON parsing.
 */
export function verifySignature(header: string, body: string, secret: string, nowSeconds: number, toleranceSeconds = SIGNATURE_TOLERANCE_SECONDS): boolean {
  const parsed = parseSignatureHeader(header);
  if (!parsed || Math.abs(nowSeconds - parsed.timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(sign(secret, body, parsed.timestamp), 'hex');
  // Constant-time, so response times do not reveal how much of a forged signature was right.
  return parsed.signatures.some((candidate) => timingSafeEqual(candidate, expected));
}

function sign(secret: string, body: string, timestampSeconds: number): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex');
}

/** The timestamp and the v1 signatures, or undefined when the header is malformed. */
function parseSignatureHeader(header: string): { timestamp: number; signatures: Buffer[] } | undefined {
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const at = part.indexOf('=');
    if (at < 0) return undefined;
    const [key, value] = [part.slice(0, at).trim(), part.slice(at + 1).trim()];
    if (key === 't') {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(value)) return undefined;
      timestamp = Number(value);
    } else if (key === 'v1') {
      // Exactly 64 hex digits, so every candidate has timingSafeEqual's required length.
      if (!/^[0-9a-f]{64}$/i.test(value)) return undefined;
      signatures.push(Buffer.from(value, 'hex'));
    }
    // Other keys (a future v2 scheme) are skipped, so receivers keep working while both are sent.
  }
  return timestamp === undefined || signatures.length === 0 ? undefined : { timestamp, signatures };
}
