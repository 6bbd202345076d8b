import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { probeAudio, UnreadableAudioError } from './audio-probe';
import { SampleStorage } from './sample-storage.port';
import type { VoiceEventReason } from './voice-status';
import { VoiceRepository } from './voice.repository';
import { addLogContext } from '../observability/log-context';

/** Reads a pending voice's sample, validates it, and queues it (or fails it with the reason). */
@Injectable()
export class MetadataService {
  private readonly logger = new Logger(MetadataService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly voices: VoiceRepository,
    private readonly storage: SampleStorage,
  ) {}

  async extract(voiceId: string): Promise<void> {
    const voice = await this.voices.findById(voiceId);
    if (voice) addLogContext({ userId: voice.userId, provider: voice.provider });
    // A duplicate or late job for a voice that moved on is a no-op.
    if (!voice || voice.status !== 'pending') return;
    const log = { voiceId, userId: voice.userId, provider: voice.provider };
    // The upload probed the sample already; only a voice uploaded before that was kept is read
    // and probed here.
    let info = voice.uploadProbe;
    if (!info) {
      try {
        info = await probeAudio(await this.storage.open(voice.sample.key), voice.sample.sizeBytes);
      } catch (err) {
        if (!(err instanceof UnreadableAudioError)) throw err; // storage fault: let the job retry
        await this.fail(voiceId, 'sample_unreadable', err.message);
        this.logger.warn({ ...log, reason: err.message }, 'sample unreadable');
        return;
      }
    }
    const seconds = info.durationMs / 1000;
    if (seconds < this.config.MIN_SAMPLE_SECONDS || seconds > this.config.MAX_SAMPLE_SECONDS) {
      const reason =
        seconds < this.config.MIN_SAMPLE_SECONDS ? 'sample_too_short' : 'sample_too_long';
      await this.fail(
        voiceId,
        reason,
        `The sample lasts ${seconds.toFixed(2)} s; accepted: ${this.config.MIN_SAMPLE_SECONDS}–${this.config.MAX_SAMPLE_SECONDS} s`,
      );
      return;
    }
    const queued = await this.voices.queueFairly({
      id: voiceId,
      provider: voice.provider,
      userId: voice.userId,
      from: ['pending'],
      set: {
        sampleFormat: info.format,
        sampleDurationMs: info.durationMs,
        sampleRate: info.sampleRate,
        sampleChannels: info.channels,
      },
      event: { type: 'metadata_ok', reason: 'metadata_valid', metadata: { ...info } },
    });
    // The dispatcher hears of it through the transition hooks (src/slots).
    if (queued)
      this.logger.log({ ...log, format: info.format, durationMs: info.durationMs }, 'voice queued');
  }

  private async fail(voiceId: string, reason: VoiceEventReason, message: string): Promise<void> {
    await this.voices.transition({
      id: voiceId,
      from: ['pending'],
      to: 'failed',
      set: { failureCode: reason, failureMessage: message },
      event: { type: 'metadata_failed', reason, metadata: { message } },
    });
  }
}
