import type { AppConfig } from '../config/config.module';
import { LongPollGate } from './long-poll.gate';

const gate = () =>
  new LongPollGate({ LONG_POLL_MAX_PER_REPLICA: 3, LONG_POLL_MAX_PER_USER: 2 } as AppConfig);

describe('LongPollGate', () => {
  it('lets a user wait up to the per-user cap, and others up to the replica cap', () => {
    const g = gate();
    const a1 = g.tryEnter('alice');
    const a2 = g.tryEnter('alice');
    expect(a1 && a2).toBeTruthy();
    expect(g.tryEnter('alice')).toBeNull();
    expect(g.tryEnter('bob')).not.toBeNull();
    expect(g.tryEnter('carol')).toBeNull();
    expect(g.waiting).toBe(3);
  });

  it('frees a place once per release, however often release is called', () => {
    const g = gate();
    const a1 = g.tryEnter('alice')!;
    g.tryEnter('alice');
    a1();
    a1();
    expect(g.waiting).toBe(1);
    expect(g.tryEnter('alice')).not.toBeNull();
    expect(g.tryEnter('alice')).toBeNull();
  });
});
