import type { Voice } from './voice';
import { READY_VOICE_MAX_AGE_MS, ReadyVoiceCache } from './ready-voice.cache';
import type { VoiceEventsListener } from './voice-events.listener';
import type { TransitionRecord, VoiceRepository } from './voice.repository';

type Observer = (voiceId: string | null, status: string | null) => void;

function setup() {
  let notify: Observer = () => undefined;
  let transitioned: (t: TransitionRecord) => void = () => undefined;
  const listener = {
    listening: true,
    listen: jest.fn(() => Promise.resolve()),
    observe: (o: Observer) => (notify = o),
  };
  const repository = { onTransition: (l: typeof transitioned) => (transitioned = l) };
  const cache = new ReadyVoiceCache(
    listener as unknown as VoiceEventsListener,
    repository as unknown as VoiceRepository,
  );
  cache.onModuleInit();
  return {
    cache,
    listener,
    notify: (id: string | null) => notify(id, id && 'deleted'),
    transition: (voice: Voice) => transitioned({ voice } as TransitionRecord),
  };
}

const voice = (over: Partial<Voice> = {}): Voice =>
  ({ id: 'v1', userId: 'alice', status: 'ready', ...over }) as Voice;

describe('ReadyVoiceCache', () => {
  const now = 1_000_000;

  it('serves a ready voice to its owner only, and for a few seconds at most', () => {
    const { cache } = setup();
    cache.fill(voice(), cache.ticket(now), now);
    expect(cache.get('v1', 'alice', now)).toMatchObject({ id: 'v1' });
    expect(cache.get('v1', 'mallory', now)).toBeUndefined();
    expect(cache.get('v1', 'alice', now + READY_VOICE_MAX_AGE_MS)).toBeUndefined();
  });

  it('caches only ready voices', () => {
    const { cache } = setup();
    cache.fill(voice({ status: 'reclaiming' }), cache.ticket(now), now);
    expect(cache.get('v1', 'alice', now)).toBeUndefined();
  });

  it('drops a voice as soon as any replica changes it, or this one does', () => {
    const { cache, notify, transition } = setup();
    cache.fill(voice(), cache.ticket(now), now);
    notify('v1');
    expect(cache.get('v1', 'alice', now)).toBeUndefined();
    cache.fill(voice(), cache.ticket(now), now);
    transition(voice({ status: 'deleted' }));
    expect(cache.get('v1', 'alice', now)).toBeUndefined();
  });

  it('does not keep a read that a change overtook', () => {
    const { cache, notify } = setup();
    const ticket = cache.ticket(now);
    notify('v1'); // committed after the read's snapshot, heard before its result
    cache.fill(voice(), ticket, now);
    expect(cache.get('v1', 'alice', now)).toBeUndefined();
  });

  it('forgets everything when notifications may have been missed, and caches nothing until they flow', () => {
    const { cache, notify, listener } = setup();
    cache.fill(voice(), cache.ticket(now), now);
    listener.listening = false;
    notify(null);
    expect(cache.get('v1', 'alice', now)).toBeUndefined();
    const ticket = cache.ticket(now);
    expect(listener.listen).toHaveBeenCalled();
    cache.fill(voice(), ticket, now);
    expect(cache.get('v1', 'alice', now)).toBeUndefined();
  });
});
