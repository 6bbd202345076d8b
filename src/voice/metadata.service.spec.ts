import { Logger } from '@nestjs/common';
import { PassThrough } from 'node:stream';
import { makeWav } from '../../test/support/wav';
import { loadConfig } from '../config/app-config';
import type { AudioInfo } from './audio-probe';
import { MetadataService } from './metadata.service';
import type { SampleStorage } from './sample-storage.port';
import type { Voice } from './voice';
import type { VoiceRepository } from './voice.repository';

const probe: AudioInfo = {
  format: 'wav',
  durationMs: 12_000,
  sampleRate: 16_000,
  channels: 1,
  contentType: 'audio/wav',
};

function setUp(uploadProbe: AudioInfo | null, sample = makeWav(12)) {
  const voice = {
    id: 'v1',
    userId: 'u1',
    provider: 'elevenlabs',
    status: 'pending',
    uploadProbe,
    sample: { key: 'k', sizeBytes: sample.length },
  } as unknown as Voice;
  const voices = {
    findById: jest.fn().mockResolvedValue(voice),
    queueFairly: jest.fn().mockResolvedValue(voice),
    transition: jest.fn().mockResolvedValue(voice),
  };
  const storage = { open: jest.fn(() => Promise.resolve(new PassThrough().end(sample))) };
  const service = new MetadataService(
    loadConfig({ MIN_SAMPLE_SECONDS: '3', MAX_SAMPLE_SECONDS: '60' }),
    voices as unknown as VoiceRepository,
    storage as unknown as SampleStorage,
  );
  return { service, voices, storage };
}

describe('MetadataService', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });

  it("queues a voice from its upload's probe without reading the sample again", async () => {
    const { service, voices, storage } = setUp(probe);
    await service.extract('v1');
    expect(storage.open).not.toHaveBeenCalled();
    expect(voices.queueFairly).toHaveBeenCalledWith(
      expect.objectContaining({
        set: {
          sampleFormat: 'wav',
          sampleDurationMs: 12_000,
          sampleRate: 16_000,
          sampleChannels: 1,
        },
        event: { type: 'metadata_ok', reason: 'metadata_valid', metadata: probe },
      }),
    );
  });

  it('fails a stored probe out of bounds with the reason a fresh probe would give', async () => {
    const { service, voices } = setUp({ ...probe, durationMs: 2_000 });
    await service.extract('v1');
    expect(voices.queueFairly).not.toHaveBeenCalled();
    expect(voices.transition).toHaveBeenCalledWith(
      expect.objectContaining({
        to: 'failed',
        set: expect.objectContaining({ failureCode: 'sample_too_short' }),
      }),
    );
  });

  it('probes the sample of a voice uploaded before probes were kept', async () => {
    const { service, voices, storage } = setUp(null);
    await service.extract('v1');
    expect(storage.open).toHaveBeenCalledWith('k');
    expect(voices.queueFairly).toHaveBeenCalledWith(
      expect.objectContaining({ set: expect.objectContaining({ sampleFormat: 'wav' }) }),
    );
  });
});
