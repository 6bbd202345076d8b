/** A binary min-heap of timed events; ties by insertion order, so a replay is deterministic. */
export class EventHeap {
  private readonly at: number[] = [];
  private readonly seq: number[] = [];
  private readonly payload: number[] = [];
  private counter = 0;

  get size(): number {
    return this.at.length;
  }

  peekTime(): number {
    return this.at.length ? this.at[0] : Infinity;
  }

  private less(i: number, j: number): boolean {
    return this.at[i] < this.at[j] || (this.at[i] === this.at[j] && this.seq[i] < this.seq[j]);
  }

  private swap(i: number, j: number): void {
    for (const a of [this.at, this.seq, this.payload]) {
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }

  push(at: number, payload: number): void {
    this.at.push(at);
    this.seq.push(this.counter++);
    this.payload.push(payload);
    let i = this.at.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the earliest event; returns its payload. */
  pop(): number {
    const top = this.payload[0];
    const last = this.at.length - 1;
    this.swap(0, last);
    this.at.pop();
    this.seq.pop();
    this.payload.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.at.length && this.less(l, m)) m = l;
      if (r < this.at.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}
