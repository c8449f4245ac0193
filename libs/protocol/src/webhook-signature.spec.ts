import { createHmac } from 'node:crypto';
import { signatureHeader, verifySignature } from './webhook-signature';

const body = '{"runId":"run_1","phase":"succeeded"}';
const sentAt = 1_750_000_000;

describe('webhook signatures', () => {
  it('signs <t>.<body> with HMAC-SHA256, and the receiver verifies it', () => {
    const header = signatureHeader(['whsec_current'], body, sentAt);
    const hex = createHmac('sha256', 'whsec_current').update(`${sentAt}.${body}`).digest('hex');
    expect(header).toBe(`t=${sentAt},v1=${hex}`);
    expect(verifySignature(header, body, 'whsec_current', sentAt + 10)).toBe(true);
  });

  it('refuses another secret and a tampered body', () => {
    const header = signatureHeader(['whsec_current'], body, sentAt);
    expect(verifySignature(header, body, 'whsec_other', sentAt)).toBe(false);
    expect(verifySignature(header, body.replace('succeeded', 'failed'), 'whsec_current', sentAt)).toBe(false);
  });

  it('refuses timestamps outside the tolerance, in the past or the future', () => {
    const header = signatureHeader(['whsec_current'], body, sentAt);
    expect(verifySignature(header, body, 'whsec_current', sentAt + 300)).toBe(true);
    expect(verifySignature(header, body, 'whsec_current', sentAt + 301)).toBe(false);
    expect(verifySignature(header, body, 'whsec_current', sentAt - 301)).toBe(false);
    expect(verifySignature(header, body, 'whsec_current', sentAt + 3600, 7200)).toBe(true);
  });

  it('signs with both secrets during a rotation, so either verifies', () => {
    const header = signatureHeader(['whsec_new', 'whsec_old'], body, sentAt);
    expect(header.split(',')).toHaveLength(3);
    expect(verifySignature(header, body, 'whsec_new', sentAt)).toBe(true);
    expect(verifySignature(header, body, 'whsec_old', sentAt)).toBe(true);
    expect(verifySignature(header, body, 'whsec_older', sentAt)).toBe(false);
  });

  it('refuses malformed headers and skips schemes it does not know', () => {
    const hex = signatureHeader(['s'], body, sentAt).split('v1=')[1];
    for (const header of ['', 'garbage', `v1=${hex}`, `t=${sentAt}`, `t=abc,v1=${hex}`, `t=${sentAt},v1=${hex.slice(2)}`, `t=${sentAt},t=${sentAt},v1=${hex}`]) {
      expect(verifySignature(header, body, 's', sentAt)).toBe(false);
    }
    expect(verifySignature(`t=${sentAt},v2=whatever,v1=${hex}`, body, 's', sentAt)).toBe(true);
  });

  it('needs a secret and whole seconds', () => {
    expect(() => signatureHeader([], body, sentAt)).toThrow('signatureHeader needs at least one secret');
    expect(() => signatureHeader(['s'], body, Date.now() + 0.5)).toThrow('signatureHeader takes whole Unix seconds');
  });
});
