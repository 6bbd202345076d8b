import { Logger } from '@nestjs/common';
import type { ProviderRegistry } from '../providers/provider-registry';
import type { RemoteVoicePage } from '../providers/voice-provider.port';
import type { DispatcherService } from '../slots/dispatcher.service';
import type { SlotsRepository } from '../slots/slots.repository';
import type { VoiceRepository } from '../voice/voice.repository';
import { MAX_LISTING_PAGES, ReconcileService } from './reconcile.service';

/** A foreign voice (no key): counted, never deleted. */
const foreignVoice = (id: string) => ({
  remoteVoiceId: id,
  name: id,
  idempotencyKey: null,
  countsTowardLimit: true,
  createdAt: null,
});

/** Reconciliation against a provider listing written by `listVoices`, every other port stubbed. */
function setUp(listVoices: (cursor: string | null) => Promise<RemoteVoicePage>) {
  const list = jest.fn(listVoices);
  const voices = {
    remoteViewOf: jest.fn().mockResolvedValue(new Map()),
    // A ready voice the listing never shows: missing only if the listing was complete.
    readyVoices: jest
      .fn()
      .mockResolvedValue([
        { id: 'v1', remoteVoiceId: 'r-unseen', leased: false, fencingToken: '1' },
      ]),
    transition: jest.fn().mockResolvedValue({ userId: 'u1' }),
    queueFairly: jest.fn(),
    recordEvent: jest.fn(),
  };
  const slots = { setForeignCount: jest.fn().mockResolvedValue(undefined) };
  const service = new ReconcileService(
    { get: () => ({ listVoices: list, deleteVoice: jest.fn() }) } as unknown as ProviderRegistry,
    voices as unknown as VoiceRepository,
    slots as unknown as SlotsRepository,
    { nudge: jest.fn() } as unknown as DispatcherService,
  );
  return { service, list, voices, slots };
}

describe('ReconcileService and a provider listing without end', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });

  it('reads a finite listing whole and corrects what is missing', async () => {
    const { service, voices, slots } = setUp((cursor) =>
      Promise.resolve(
        cursor === null
          ? { voices: [foreignVoice('a')], nextCursor: 'p2' }
          : { voices: [foreignVoice('b')], nextCursor: null },
      ),
    );
    const report = await service.reconcile('elevenlabs');
    expect(report).toMatchObject({ complete: true, remoteVoices: 2, foreign: 2, missingReady: 1 });
    expect(slots.setForeignCount).toHaveBeenCalledWith('elevenlabs', 2);
    expect(voices.transition).toHaveBeenCalledTimes(1);
  });

  it('stops at the page cap, and then neither corrects ready voices nor lowers the foreign count', async () => {
    let n = 0;
    const { service, list, voices, slots } = setUp(() =>
      Promise.resolve({ voices: [foreignVoice(`f${n}`)], nextCursor: `c${++n}` }),
    );
    const report = await service.reconcile('elevenlabs');
    expect(list).toHaveBeenCalledTimes(MAX_LISTING_PAGES);
    expect(report).toMatchObject({ complete: false, missingReady: 0 });
    expect(voices.transition).not.toHaveBeenCalled();
    expect(slots.setForeignCount).not.toHaveBeenCalled();
  });

  it('stops at a repeated cursor', async () => {
    const { service, list, voices } = setUp(() =>
      Promise.resolve({ voices: [foreignVoice('same')], nextCursor: 'again' }),
    );
    const report = await service.reconcile('elevenlabs');
    expect(list).toHaveBeenCalledTimes(2);
    expect(report.complete).toBe(false);
    expect(voices.transition).not.toHaveBeenCalled();
  });
});
