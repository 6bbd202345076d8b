import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { VoiceUsageRepository } from './voice-usage.repository';

const FLUSH_MS = 2_000;

/**
 * Records when ready voices are used without a database write per activation: uses collect in
 * memory and are written in one statement every two seconds (and at shutdown). Reclaim looks at
 * idleness in minutes, and the activation lease (written when renewed) protects a voice in use, so
 * a last-use time a second or two late changes no decision.
 */
@Injectable()
export class LastUseRecorder implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(LastUseRecorder.name);
  private pending = new Map<string, Date>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly voices: VoiceUsageRepository) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  record(voiceId: string, at = new Date()): void {
    this.pending.set(voiceId, at);
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.voices.recordLastUse([...batch.keys()], [...batch.values()]);
    } catch (err) {
      // Keep what failed for the next flush, unless newer uses replaced it.
      for (const [id, at] of batch) if (!this.pending.has(id)) this.pending.set(id, at);
      this.logger.warn({ err, count: batch.size }, 'last-use flush failed; retrying');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}
