import { Writable } from 'node:stream';

/** Keeps the last `limit` bytes written, so a chatty program cannot grow the runner's memory. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private total = 0;

  constructor(private readonly limit: number) {}

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.total += chunk.length;
    // Copy just the tail of an oversized write so the big buffer can be collected.
    const kept = chunk.length > this.limit ? Buffer.from(chunk.subarray(chunk.length - this.limit)) : chunk;
    this.chunks.push(kept);
    this.size += kept.length;
    // Drop whole chunks that lie entirely before the tail; text() trims the last partial one.
    while (this.chunks.length > 1 && this.size - this.chunks[0].length >= this.limit) {
      this.size -= this.chunks[0].length;
      this.chunks.shift();
    }
  }

  get truncated(): boolean {
    return this.total > this.limit;
  }

  text(): string {
    let data = Buffer.concat(this.chunks);
    if (data.length > this.limit) data = data.subarray(data.length - this.limit);
    if (this.truncated) {
      // The cut may have split a UTF-8 sequence: skip its orphaned continuation bytes.
      let start = 0;
      while (start < 3 && start < data.length && (data[start] & 0xc0) === 0x80) start++;
      data = data.subarray(start);
    }
    return data.toString('utf8');
  }
}

/**
 * A stand-in for process.stdout / process.stderr. Replacing the streams (instead of patching the
 * real ones) means Node never wraps fd 1 in a libuv pipe handle, which would switch it to
 * non-blocking mode and make the final synchronous response write partial.
 */
class CaptureStream extends Writable {
  readonly isTTY = false;

  constructor(tail: TailBuffer) {
    super({
      decodeStrings: true,
      write(chunk: Buffer, _encoding, callback) {
        tail.append(chunk);
        callback();
      },
    });
  }
}

/** Routes process.stdout/stderr (and so console.*) into the given buffers. */
export function captureStdio(stdout: TailBuffer, stderr: TailBuffer): void {
  for (const [name, tail] of [['stdout', stdout], ['stderr', stderr]] as const) {
    Object.defineProperty(process, name, { value: new CaptureStream(tail), configurable: true, writable: true, enumerable: true });
  }
}
