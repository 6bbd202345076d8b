import type { HeldVoice } from '../policy/reclaim-policy';

/** The held (ready) voices as an array the policy reads, with O(1) removal by voice number. */
export class HeldSet {
  readonly list: HeldVoice[] = [];
  private readonly voiceOf: number[] = [];
  private readonly position: Int32Array;

  constructor(voices: number) {
    this.position = new Int32Array(voices).fill(-1);
  }

  get(v: number): HeldVoice | undefined {
    const p = this.position[v];
    return p < 0 ? undefined : this.list[p];
  }

  add(v: number, h: HeldVoice): void {
    this.position[v] = this.list.length;
    this.list.push(h);
    this.voiceOf.push(v);
  }

  remove(v: number): void {
    const p = this.position[v];
    const last = this.list.length - 1;
    this.list[p] = this.list[last];
    this.voiceOf[p] = this.voiceOf[last];
    this.position[this.voiceOf[p]] = p;
    this.list.pop();
    this.voiceOf.pop();
    this.position[v] = -1;
  }
}
