import { QUEUE_INFO } from './support/slot-pool';
import type { DataSource } from 'typeorm';
import type { VoiceRepository } from '../src/voice/voice.repository';
import type { SlotsRepository } from '../src/slots/slots.repository';
import type { BreakerRepository } from '../src/providers/breaker.repository';
import type { QueuePositionRepository } from '../src/voice/queue-position.repository';
import { useSlotPool } from './support/slot-pool';

/**
 * The claim on the real Postgres: under the provider lock, never past a limit or a breaker, in
 * fair order.
 */
describe('slot pool on Postgres', () => {
  const { pool, claim, queueVoice, whileAnotherHoldsTheLock } = useSlotPool();
  let ds: DataSource;
  let voices: VoiceRepository;
  let slots: SlotsRepository;
  let breaker: BreakerRepository;
  let positions: QueuePositionRepository;
  beforeAll(() => ({ ds, voices, slots, breaker, positions } = pool));

  it('never claims beyond the limit with 8 dispatchers racing for 3 slots', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 3 });
    for (let i = 0; i < 20; i++) await queueVoice(`user-${i % 4}`);
    const claims = await Promise.all(Array.from({ length: 8 }, () => claim('elevenlabs', 50)));
    expect(claims.flat()).toHaveLength(3);
    const cap = await slots.capacity('elevenlabs');
    expect(cap).toMatchObject({ limit: 3, held: 3, free: 0, queued: 17 });
    // A second wave, after nothing was freed, claims nothing.
    const again = await Promise.all(Array.from({ length: 8 }, () => claim('elevenlabs', 50)));
    expect(again.flat()).toHaveLength(0);
  });

  it('counts the voices a claim committed while another claim waited for the lock', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 3 });
    for (let i = 0; i < 6; i++) await queueVoice(`user-${i}`);
    // Another replica's claim, caught between taking the provider lock and committing.
    const claimed = await whileAnotherHoldsTheLock(
      (other) =>
        other.query(
          `UPDATE voices SET status = 'allocating', fencing_token = fencing_token + 1
            WHERE id IN (SELECT id FROM voices WHERE status = 'queued'
                          ORDER BY fair_tag, queued_at, id LIMIT 2)`,
        ),
      () => claim('elevenlabs', 50),
    );
    expect(claimed).toHaveLength(1);
    expect(await slots.capacity('elevenlabs')).toMatchObject({ held: 3, free: 0, queued: 3 });
  });

  it('claims nothing under an open breaker until the cool-down, then exactly one probe', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 10 });
    for (let i = 0; i < 4; i++) await queueVoice(`user-${i}`);
    await ds.query(
      `UPDATE providers SET breaker_state = 'open', breaker_opened_at = now() WHERE name = 'elevenlabs'`,
    );
    expect(await claim('elevenlabs', 50)).toHaveLength(0);
    await ds.query(
      `UPDATE providers SET breaker_opened_at = now() - interval '31 seconds' WHERE name = 'elevenlabs'`,
    );
    const probes = await Promise.all(Array.from({ length: 4 }, () => claim('elevenlabs', 50)));
    expect(probes.flat()).toHaveLength(1);
    const cap = await slots.capacity('elevenlabs');
    expect(cap).toMatchObject({ breaker: 'half_open', held: 1, queued: 3 });
    // While the probe's lease runs nothing more goes out; once it has run out, one more probe.
    expect(await claim('elevenlabs', 50)).toHaveLength(0);
    await ds.query(
      `UPDATE providers SET breaker_probe_until = now() - interval '1 second' WHERE name = 'elevenlabs'`,
    );
    expect(await claim('elevenlabs', 50)).toHaveLength(1);
    // A success closes the breaker and claims go back to filling every free slot.
    await breaker.recordProviderSuccess('elevenlabs');
    expect(await claim('elevenlabs', 50)).toHaveLength(2);
  });

  it('counts foreign voices and the lower of configured and account limits', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 10, accountLimit: 4 });
    await slots.setForeignCount('elevenlabs', 1);
    for (let i = 0; i < 6; i++) await queueVoice('u');
    expect(await claim('elevenlabs', 50)).toHaveLength(3);
  });

  it("one provider's full pool does not stop another's claims", async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 0 });
    await slots.setLimits('cartesia', { configuredLimit: 2 });
    await queueVoice('u', 'elevenlabs');
    const c1 = await queueVoice('u', 'cartesia');
    expect(await claim('elevenlabs', 50)).toHaveLength(0);
    expect((await claim('cartesia', 50)).map((c) => c.voiceId)).toEqual([c1]);
  });

  it('serves users round robin, and each user first in first out', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 100 });
    const a = [
      await queueVoice('a'),
      await queueVoice('a'),
      await queueVoice('a'),
      await queueVoice('a'),
    ];
    const b = [await queueVoice('b'), await queueVoice('b')];
    const c = [await queueVoice('c')];
    const order = (await claim('elevenlabs', 50)).map((x) => x.voiceId);
    expect(order).toEqual([a[0], b[0], c[0], a[1], b[1], a[2], a[3]]);
  });

  it('places a late user ahead of the rest of an earlier burst', async () => {
    await slots.setLimits('elevenlabs', { configuredLimit: 1 });
    const burst = [];
    for (let i = 0; i < 5; i++) burst.push(await queueVoice('early'));
    expect((await claim('elevenlabs', 50)).map((x) => x.voiceId)).toEqual([burst[0]]);
    const late = await queueVoice('late');
    await slots.setLimits('elevenlabs', { configuredLimit: 3 });
    expect((await claim('elevenlabs', 50)).map((x) => x.voiceId)).toEqual([burst[1], late]);
    const queued = (await voices.findById(burst[2]))!;
    expect((await positions.queuePosition(queued, QUEUE_INFO))?.position).toBe(1);
  });
});
