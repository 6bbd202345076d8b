import { Logger } from '@nestjs/common';
import { loadConfig } from '../config/app-config';
import type { ProviderRegistry } from '../providers/provider-registry';
import type { SampleStorage } from '../voice/sample-storage.port';
import type { Voice } from '../voice/voice';
import type { VoiceRepository } from '../voice/voice.repository';
import { AllocationService } from './allocation.service';
import type { CapacityService } from './capacity.service';
import type { DispatcherService } from './dispatcher.service';
import type { SlotsRepository } from './slots.repository';

const LEASE_SECONDS = 10;

const voice = {
  id: 'v1',
  userId: 'u1',
  name: 'Alice',
  provider: 'elevenlabs',
  language: null,
  status: 'allocating',
  fencingToken: '7',
  attempts: 1,
  remoteTries: 1,
  sample: {
    key: 'k',
    contentType: 'audio/wav',
    filename: 'a.wav',
    sizeBytes: 10,
    sha256: '0',
    format: 'wav',
    durationMs: 1000,
    sampleRate: 16000,
    channels: 1,
  },
} as unknown as Voice;

/**
 * The allocation's ports replaced by stubs: `frozenMs` is how long the process stands still
 * (frozen, or starved of CPU) between taking its lease and the provider call.
 */
function setUp(opts: { frozenMs: number; leaseStillHeld: boolean }) {
  const createVoice = jest.fn().mockResolvedValue({ remoteVoiceId: 'r1' });
  const renewLease = jest.fn().mockResolvedValue(opts.leaseStillHeld);
  const transition = jest.fn().mockResolvedValue(voice);
  const slots = {
    beginAttempt: jest.fn(() => {
      jest.advanceTimersByTime(opts.frozenMs);
      return Promise.resolve({ voice, breaker: 'closed', breakerFailures: 0 });
    }),
    renewLease,
  } as unknown as SlotsRepository;
  const service = new AllocationService(
    loadConfig({ ALLOCATION_LEASE_SECONDS: String(LEASE_SECONDS) }),
    { transition } as unknown as VoiceRepository,
    slots,
    {
      get: () => ({ createVoice, findByIdempotencyKey: jest.fn() }),
    } as unknown as ProviderRegistry,
    {} as SampleStorage,
    { nudge: jest.fn() } as unknown as DispatcherService,
    {} as CapacityService,
  );
  return { service, createVoice, renewLease, transition };
}

describe('AllocationService and its lease', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('creates at once while the lease has time left, without an extra round trip', async () => {
    const { service, createVoice, renewLease } = setUp({ frozenMs: 0, leaseStillHeld: true });
    await expect(service.allocate('v1', '7')).resolves.toBe('ready');
    expect(createVoice).toHaveBeenCalledTimes(1);
    expect(renewLease).not.toHaveBeenCalled();
  });

  it('never creates after standing still past its lease once the voice was taken over', async () => {
    const { service, createVoice, transition } = setUp({
      frozenMs: LEASE_SECONDS * 1000 + 1,
      leaseStillHeld: false,
    });
    await expect(service.allocate('v1', '7')).resolves.toBe('stale');
    expect(createVoice).not.toHaveBeenCalled();
    expect(transition).not.toHaveBeenCalled();
  });

  it('renews a lapsed lease that nobody took over and goes on', async () => {
    const { service, createVoice, renewLease } = setUp({
      frozenMs: LEASE_SECONDS * 1000 + 1,
      leaseStillHeld: true,
    });
    await expect(service.allocate('v1', '7')).resolves.toBe('ready');
    expect(renewLease).toHaveBeenCalledWith('v1', '7', LEASE_SECONDS);
    expect(createVoice).toHaveBeenCalledTimes(1);
  });
});
