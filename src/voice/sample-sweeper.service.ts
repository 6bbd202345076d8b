import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { SampleStorage, voiceIdOfSampleKey } from './sample-storage.port';
import { VoiceCleanupRepository } from './voice-cleanup.repository';

export interface OrphanSweep {
  /** Samples removed because no voice row names them. */
  orphans: number;
  /** Unfinished writes removed. */
  abandoned: number;
}

/**
 * Removes what no voice row accounts for: a sample stored by an upload that crashed (or lost its
 * database) before inserting its row, one whose refusal could not remove it, and unfinished writes.
 * Deleted voices' samples are not this sweep's: their removal is pending in Postgres and re-driven
 * by the clean-up sweep (SweeperService.sweepCleanups).
 *
 * The age threshold (SAMPLE_ORPHAN_AGE_SECONDS) is what makes this safe beside running uploads:
 * an upload writes its file first and inserts its row afterwards, in the same request, so for a
 * moment every fresh sample has no row. That request is cut by HTTP_REQUEST_TIMEOUT_SECONDS and its
 * insert by the statement timeout, and the configuration refuses an age below the former; a file
 * last written longer ago than the threshold with no row has an upload that will never insert one.
 * Rows are read after the listing, so a row inserted while the folder was listed is seen.
 */
@Injectable()
export class SampleSweeperService {
  private readonly logger = new Logger(SampleSweeperService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly storage: SampleStorage,
    private readonly voices: VoiceCleanupRepository,
  ) {}

  async sweepOrphans(now = new Date()): Promise<OrphanSweep> {
    const before = new Date(now.getTime() - this.config.SAMPLE_ORPHAN_AGE_SECONDS * 1000);
    let orphans = 0;
    for await (const page of this.storage.listSamples()) {
      const old = page.filter((s) => s.modifiedAt < before);
      if (!old.length) continue;
      const ids = old.flatMap((s) => voiceIdOfSampleKey(s.key) ?? []);
      const owned = await this.voices.sampleKeysOf(ids);
      for (const { key, modifiedAt } of old) {
        if (owned.has(key)) continue;
        try {
          await this.storage.remove(key);
          orphans++;
          this.logger.warn({ key, modifiedAt }, 'orphan sample removed (no voice row)');
        } catch (err) {
          this.logger.warn({ err, key }, 'could not remove an orphan sample; next sweep retries');
        }
      }
    }
    const abandoned = await this.storage.removeAbandonedWrites(before);
    if (abandoned) this.logger.warn({ abandoned }, 'unfinished sample writes removed');
    return { orphans, abandoned };
  }
}
