import { TailBuffer } from './log-capture';

describe('TailBuffer', () => {
  it('keeps everything under the limit', () => {
    const tail = new TailBuffer(10);
    tail.append(Buffer.from('abc'));
    tail.append(Buffer.from('def'));
    expect([tail.text(), tail.truncated]).toEqual(['abcdef', false]);
  });

  it('keeps the last bytes of many writes and of one oversized write', () => {
    const many = new TailBuffer(4);
    for (const part of ['ab', 'cd', 'ef', 'g']) many.append(Buffer.from(part));
    expect([many.text(), many.truncated]).toEqual(['defg', true]);
    const one = new TailBuffer(3);
    one.append(Buffer.from('0123456789'));
    expect([one.text(), one.truncated]).toEqual(['789', true]);
  });

  it('never starts the tail with half a UTF-8 character', () => {
    const tail = new TailBuffer(4);
    tail.append(Buffer.from('xé€')); // € is 3 bytes: the cut lands inside é
    expect(tail.text()).toBe('€');
  });
});
