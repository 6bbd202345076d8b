import { Logger } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import type { Voice } from './voice';
import { VoiceTransitionHooks, type VoiceTransition } from './voice-transition.hooks';
import { VoiceRepository } from './voice.repository';

const transition = {
  voice: { id: 'v1' } as Voice,
  provider: 'elevenlabs',
  from: 'pending',
  to: 'queued',
  event: { type: 'metadata_ok', reason: 'metadata_valid' },
} satisfies VoiceTransition;

/** The row the transition statement returns: enough of a voice row for voiceFromRow. */
const row = {
  id: 'v1',
  provider: 'elevenlabs',
  status: 'queued',
  old_status: 'pending',
  fencing_token: 1,
  fair_tag: null,
  sample_size_bytes: 1,
  sample_removal_due_at: null,
};

describe('VoiceTransitionHooks', () => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  it('tells every subscriber, and one that throws or rejects breaks neither the others nor the caller', async () => {
    const hooks = new VoiceTransitionHooks();
    const seen: string[] = [];
    hooks.subscribe('throws', () => {
      throw new Error('boom');
    });
    hooks.subscribe('rejects', () => Promise.reject(new Error('later boom')));
    hooks.subscribe('ok', (t) => {
      seen.push(`${t.from}->${t.to}`);
    });
    await expect(hooks.publish(transition)).resolves.toBeUndefined();
    expect(seen).toEqual(['pending->queued']);
    expect(Logger.prototype.warn).toHaveBeenCalledTimes(2);
  });

  it('waits for asynchronous subscribers before the caller goes on', async () => {
    const hooks = new VoiceTransitionHooks();
    let done = false;
    hooks.subscribe('slow', async () => {
      await new Promise((r) => setTimeout(r, 5));
      done = true;
    });
    await hooks.publish(transition);
    expect(done).toBe(true);
  });
});

describe('VoiceRepository transition hooks', () => {
  /** A data source whose transaction commits when its callback has returned. */
  function fakeDataSource(state: { committed: boolean }) {
    const em = {
      query: jest.fn(() => Promise.resolve([row])),
      queryRunner: { isTransactionActive: true },
    } as unknown as EntityManager;
    const ds = {
      manager: { query: jest.fn(() => Promise.resolve([row])) },
      transaction: async <T>(fn: (em: EntityManager) => Promise<T>): Promise<T> => {
        const result = await fn(em);
        state.committed = true;
        return result;
      },
    } as unknown as DataSource;
    return { ds, em };
  }

  it('publishes a transition made in a transaction only after the commit', async () => {
    const state = { committed: false };
    const { ds } = fakeDataSource(state);
    const hooks = new VoiceTransitionHooks();
    const atPublish: boolean[] = [];
    hooks.subscribe('probe', () => {
      atPublish.push(state.committed);
    });
    const repo = new VoiceRepository(ds, hooks);
    await repo.transaction((em) =>
      repo.transition({ id: 'v1', from: ['pending'], to: 'queued', event: transition.event }, em),
    );
    expect(atPublish).toEqual([true]);
  });

  it('publishes a transition made on its own at once, with its provider and both states', async () => {
    const { ds } = fakeDataSource({ committed: false });
    const hooks = new VoiceTransitionHooks();
    const seen: VoiceTransition[] = [];
    hooks.subscribe('probe', (t) => {
      seen.push(t);
    });
    await new VoiceRepository(ds, hooks).transition({
      id: 'v1',
      from: ['pending'],
      to: 'queued',
      event: transition.event,
    });
    expect(seen.map((t) => [t.provider, t.from, t.to])).toEqual([
      ['elevenlabs', 'pending', 'queued'],
    ]);
  });

  it('refuses a transition the table forbids, before it writes anything', async () => {
    const { ds } = fakeDataSource({ committed: false });
    await expect(
      new VoiceRepository(ds).transition({
        id: 'v1',
        from: ['deleted'],
        to: 'queued',
        event: transition.event,
      }),
    ).rejects.toThrow('deleted -> queued');
    expect(ds.manager.query).not.toHaveBeenCalled();
  });

  it('refuses a transition inside a transaction it cannot see commit', async () => {
    const { ds, em } = fakeDataSource({ committed: false });
    const repo = new VoiceRepository(ds, new VoiceTransitionHooks());
    await expect(
      repo.transition({ id: 'v1', from: ['pending'], to: 'queued', event: transition.event }, em),
    ).rejects.toThrow(/VoiceRepository.transaction/);
  });
});
