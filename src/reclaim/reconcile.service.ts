import { Injectable, Logger } from '@nestjs/common';
import { isUuid } from '../common/uuid';
import type { ProviderName } from '../config/app-config';
import { ProviderRegistry } from '../providers/provider-registry';
import type { RemoteVoice } from '../providers/voice-provider.port';
import { DispatcherService } from '../slots/dispatcher.service';
import { SlotsRepository } from '../slots/slots.repository';
import type { VoiceStatus } from '../voice/voice-status';
import { VoiceRepository } from '../voice/voice.repository';

export interface ReconcileReport {
  provider: ProviderName;
  remoteVoices: number;
  foreign: number;
  orphansDeleted: number;
  missingReady: number;
  requeued: number;
  /** False when the listing was cut short (page cap, repeated cursor): see listAll. */
  complete: boolean;
}

/**
 * Bounds on one listing. Accounts hold tens to a few thousand voices (100 a page); a provider
 * answering pages without end, or a cursor that loops, must not keep reconciliation (and the
 * memory of every page) going forever. Each page is itself capped in bytes (http.ts).
 */
export const MAX_LISTING_PAGES = 500;
export const MAX_LISTING_VOICES = 50_000;

/** Statuses whose voice may legitimately own a remote voice that the database does not name yet. */
const IN_FLIGHT: readonly VoiceStatus[] = ['allocating', 'reclaiming'];

/**
 * Aligns the database with what a provider really holds: deletes remote voices that carry the key
 * of one of our voices but belong to it no more (orphans of lost answers, stale workers, failed
 * clean-ups), corrects ready voices whose remote voice vanished (and queues them again when they
 * are in use), and counts foreign voices toward the account's capacity.
 *
 * A key that names no voice of this database is treated as foreign, never deleted: several
 * deployments (staging and production) may share one provider account.
 */
/** Told about every finished reconciliation. */
export type ReconcileObserver = (provider: ProviderName, report: ReconcileReport) => void;

@Injectable()
export class ReconcileService {
  private readonly logger = new Logger(ReconcileService.name);

  constructor(
    private readonly providers: ProviderRegistry,
    private readonly voices: VoiceRepository,
    private readonly slots: SlotsRepository,
    private readonly dispatcher: DispatcherService,
  ) {}

  // Metrics sit on the floor above and read this one, so they register here rather than being
  // called (the dependency points from ops down to reclaim).
  private readonly observers: ReconcileObserver[] = [];

  /** Told about every finished reconciliation (metrics count runs and findings). */
  onReconciled(observer: ReconcileObserver): void {
    this.observers.push(observer);
  }

  async reconcile(provider: ProviderName): Promise<ReconcileReport> {
    const adapter = this.providers.get(provider);
    const startedAt = new Date();
    const { remote, complete } = await this.listAll(provider);

    const keyed = remote.filter((v) => v.idempotencyKey !== null && isUuid(v.idempotencyKey));
    const ours = await this.voices.remoteViewOf(
      provider,
      keyed.map((v) => v.idempotencyKey as string),
    );
    let foreign = remote.filter(
      (v) => v.countsTowardLimit && !ours.has(v.idempotencyKey ?? ''),
    ).length;
    let orphansDeleted = 0;
    for (const rv of keyed) {
      const owner = ours.get(rv.idempotencyKey as string);
      if (!owner || IN_FLIGHT.includes(owner.status) || owner.remoteVoiceId === rv.remoteVoiceId)
        continue;
      // Ours by key, but not the remote voice its owner holds: an orphan taking a slot.
      try {
        await adapter.deleteVoice(rv.remoteVoiceId);
        orphansDeleted++;
        await this.voices.recordEvent(
          rv.idempotencyKey as string,
          'orphan_deleted',
          'reconciliation',
          {
            remoteVoiceId: rv.remoteVoiceId,
          },
        );
        this.logger.warn(
          {
            voiceId: rv.idempotencyKey,
            provider,
            remoteVoiceId: rv.remoteVoiceId,
            status: owner.status,
          },
          'orphan remote voice deleted',
        );
      } catch (err) {
        foreign++; // still there: it keeps counting until the next run deletes it
        this.logger.warn(
          { err, provider, remoteVoiceId: rv.remoteVoiceId },
          'orphan delete failed',
        );
      }
    }

    const present = new Set(remote.map((v) => v.remoteVoiceId));
    let missingReady = 0;
    let requeued = 0;
    // A voice on a page never read is not missing: correcting it would re-clone a ready voice
    // (a clone of the budget spent for nothing). An incomplete listing only deletes orphans.
    const readyVoices = complete ? await this.voices.readyVoices(provider, startedAt) : [];
    for (const v of readyVoices) {
      if (present.has(v.remoteVoiceId)) continue;
      const reclaimed = await this.voices.transition({
        id: v.id,
        from: ['ready'],
        token: v.fencingToken,
        to: 'reclaimed',
        bumpToken: true,
        set: { remoteVoiceId: null, remoteTries: 0, attempts: 0 },
        event: {
          type: 'remote_missing',
          reason: 'remote_missing',
          metadata: { remoteVoiceId: v.remoteVoiceId },
        },
      });
      if (!reclaimed) continue;
      missingReady++;
      this.logger.warn(
        { voiceId: v.id, provider, remoteVoiceId: v.remoteVoiceId },
        'ready voice missing remotely',
      );
      if (v.leased) {
        // In use right now: get it back without waiting for the app to activate it again.
        const again = await this.voices.queueFairly({
          id: v.id,
          provider,
          userId: reclaimed.userId,
          from: ['reclaimed'],
          event: { type: 'requeued', reason: 'reconciliation' },
        });
        if (again) requeued++;
      }
    }

    // An incomplete count would only be too low, and let the claim overfill the account.
    if (complete) await this.slots.setForeignCount(provider, foreign);
    const report = {
      provider,
      remoteVoices: remote.length,
      foreign,
      orphansDeleted,
      missingReady,
      requeued,
      complete,
    };
    this.logger.log(report, 'reconciliation finished');
    for (const observe of this.observers) observe(provider, report);
    this.dispatcher.nudge(provider);
    return report;
  }

  /** Every page of the listing, stopping at a repeated cursor or past the caps (incomplete). */
  private async listAll(
    provider: ProviderName,
  ): Promise<{ remote: RemoteVoice[]; complete: boolean }> {
    const adapter = this.providers.get(provider);
    const remote: RemoteVoice[] = [];
    const seen = new Set<string>();
    let cursor: string | null = null;
    const overCaps = (pages: number) => {
      this.logger.warn(
        { provider, pages, voices: remote.length },
        'provider listing exceeds the caps; reconciliation uses what was read',
      );
      return { remote, complete: false };
    };
    for (let pages = 0; ; pages++) {
      if (pages >= MAX_LISTING_PAGES) return overCaps(pages);
      const page = await adapter.listVoices(cursor);
      const room = MAX_LISTING_VOICES - remote.length;
      remote.push(...page.voices.slice(0, room));
      if (page.voices.length > room) return overCaps(pages + 1);
      cursor = page.nextCursor;
      if (!cursor) return { remote, complete: true };
      if (seen.has(cursor)) {
        this.logger.warn({ provider, pages: pages + 1 }, 'provider listing repeats a cursor');
        return { remote, complete: false };
      }
      seen.add(cursor);
    }
  }
}
