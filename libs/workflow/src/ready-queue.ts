/**
 * Nodes that became ready, handed out in the order the engine has always dispatched them: in
 * passes over the definition order. Within a pass, a node made ready by a node before it is
 * taken in the same pass; one made ready by a node after it waits for the next pass. This is the
 * order a full scan of the node list repeated until nothing changes gives, without the scan.
 */
export class ReadyQueue {
  private next = new Set<string>();
  private pass: MinHeap | undefined;
  private cursor = -1;

  constructor(private readonly positionOf: (nodeId: string) => number) {}

  get size(): number {
    return this.next.size + (this.pass?.size ?? 0);
  }

  add(nodeId: string): void {
    const position = this.positionOf(nodeId);
    if (this.pass && position > this.cursor) this.pass.push(position, nodeId);
    else this.next.add(nodeId);
  }

  /** Starts the next pass; returns its nodes (to load them in one go). */
  startPass(): string[] {
    const ids = [...this.next];
    this.pass = new MinHeap();
    for (const id of ids) this.pass.push(this.positionOf(id), id);
    this.next = new Set();
    this.cursor = -1;
    return ids;
  }

  /** The pass's next node in definition order, or undefined when the pass is over. */
  take(): string | undefined {
    const entry = this.pass?.pop();
    if (!entry) {
      this.pass = undefined;
      return undefined;
    }
    this.cursor = entry[0];
    return entry[1];
  }
}

/** A binary min-heap of [position, id] pairs. */
class MinHeap {
  private readonly items: Array<[number, string]> = [];

  get size(): number {
    return this.items.length;
  }

  push(position: number, id: string): void {
    const items = this.items;
    items.push([position, id]);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent][0] <= items[i][0]) break;
      [items[parent], items[i]] = [items[i], items[parent]];
      i = parent;
    }
  }

  pop(): [number, string] | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < items.length && items[left][0] < items[smallest][0]) smallest = left;
        if (right < items.length && items[right][0] < items[smallest][0]) smallest = right;
        if (smallest === i) break;
        [items[smallest], items[i]] = [items[i], items[smallest]];
        i = smallest;
      }
    }
    return top;
  }
}
