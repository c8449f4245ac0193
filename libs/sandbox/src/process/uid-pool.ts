import { randomInt } from 'node:crypto';

/** A range of host uids (used as uid and gid) reserved for sandboxes. */
export interface UidRange {
  first: number;
  count: number;
}

/**
 * Far above regular accounts (< 60000) and the usual subuid ranges (100000 + 65536·n for a few
 * users), below 2^31 so no tool mistakes them for negative ids.
 */
export const DEFAULT_SANDBOX_UIDS: UidRange = { first: 1_900_000_000, count: 65_536 };

/**
 * Hands out one host uid per running sandbox. RLIMIT_NPROC counts every process of a host uid,
 * so a uid shared by two sandboxes would share their process budget; slots are picked at random
 * so several drivers (worker processes) on one host rarely pick the same uid at the same time.
 */
export class UidPool {
  private readonly inUse = new Set<number>();

  constructor(private readonly range: UidRange) {
    if (!Number.isInteger(range.first) || !Number.isInteger(range.count) || range.first < 1 || range.count < 1) {
      throw new Error(`sandboxUids: expected positive integers { first, count }, got ${JSON.stringify(range)}`);
    }
    if (range.first + range.count > 2 ** 31) throw new Error('sandboxUids: the range must end below 2^31');
  }

  get size(): number {
    return this.range.count;
  }

  acquire(): number {
    if (this.inUse.size >= this.range.count) {
      throw new Error(`all ${this.range.count} sandbox uids are in use; raise sandboxUids.count`);
    }
    for (;;) {
      const uid = this.range.first + randomInt(this.range.count);
      if (!this.inUse.has(uid)) {
        this.inUse.add(uid);
        return uid;
      }
    }
  }

  release(uid: number): void {
    this.inUse.delete(uid);
  }
}
