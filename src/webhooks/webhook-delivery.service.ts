import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { toProviderStatus } from '../slots/provider-status.dto';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { cloneAllowance, budgetSettings } from '../policy/clone-budget';
import { budgetState, ProviderAccountsRepository } from '../providers/provider-accounts.repository';
import { SlotsRepository } from '../slots/slots.repository';
import { toVoiceDto } from '../voice/voice.dto';
import { WebhookSender } from './webhook-sender';
import { WebhooksRepository, type Attempt, type ClaimedDelivery } from './webhooks.repository';

/** Deliveries one worker has in flight at most (taken under a lease, being sent or recorded). */
const IN_FLIGHT = 64;
/** More are taken once this many places are free, so a claim is worth its query. */
const REFILL_AT = 16;
/**
 * A taken delivery is another worker's again after this (a killed worker's, say): the send's own
 * deadline (15 s) plus a margin to record its outcome.
 */
const LEASE_SECONDS = 20;
/**
 * With nothing due, the worker looks again this often (new deliveries are due at once, retries
 * later): one indexed query per worker per interval, instead of a listener that would be one more
 * connection to keep alive per replica. It bounds the delay of an event on an idle system.
 */
const IDLE_MS = 200;
/**
 * Within IDLE_MS of a round that took something, the worker looks again after this instead: a
 * steady stream is sent as it comes rather than after up to IDLE_MS each time a round happens to
 * find nothing new. It is also the least time between two rounds that did not fill every place,
 * whatever freed meanwhile: each claim costs Postgres about as much as a send, so a stream of
 * 1,000 events/s is taken some twenty at a time instead of claim after claim of a few.
 */
const BUSY_MS = 20;

export interface DeliveryObserver {
  onAttempt(outcome: 'delivered' | 'retry' | 'failed', seconds: number): void;
}

interface Finished {
  id: string;
  attempt: Attempt;
  delivered: boolean;
  retryInSeconds: number | null;
  payload: string | null;
}

/**
 * The worker role's webhook deliveries, driven from Postgres: the worker keeps up to IN_FLIGHT
 * deliveries going, taking due ones under a lease as places free (at most
 * WEBHOOK_CONCURRENCY_PER_ENDPOINT per endpoint, counted across workers), so a hanging receiver
 * holds only its own places and never the next deliveries to others. Each round's bodies are
 * built with one read of its voices; finished attempts are recorded (with a first attempt's body)
 * together, one write at a time, each taking all those finished meanwhile. A failure is due again
 * after the next wait of the schedule, with ±20 % jitter so a receiver coming back is not hit by every retry at once. Nothing is in
 * memory beyond the deliveries in flight, so a receiver down for hours costs rows, not RAM, and
 * every event is sent when it returns.
 */
@Injectable()
export class WebhookDeliveryService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookDeliveryService.name);
  private sender: WebhookSender | null = null;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** The loop waits for a place (every one taken): a finished send wakes it. */
  private waitingForPlace = false;
  private observer: DeliveryObserver | null = null;
  private inFlight = 0;
  private finished: Finished[] = [];
  /** The write that will take the attempts in `finished`, once the one in flight is done. */
  private recording: Promise<void> | null = null;
  private writing: Promise<void> | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly webhooks: WebhooksRepository,
    private readonly slots: SlotsRepository,
    private readonly accounts: ProviderAccountsRepository,
  ) {}

  setObserver(observer: DeliveryObserver): void {
    this.observer = observer;
  }

  onApplicationBootstrap(): void {
    // Every replica writes it (the same configuration everywhere), so none depends on a worker.
    this.webhooks
      .setBudgetLowRatio(this.config.CLONE_BUDGET_LOW_RATIO)
      .catch((err: unknown) =>
        this.logger.warn({ err }, 'could not write CLONE_BUDGET_LOW_RATIO; the last one stays'),
      );
    if (!hasRole(this.config, 'worker')) return;
    this.sender = new WebhookSender(this.config.webhookAllowPrivate);
    this.loop = this.run();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    await this.sender?.close();
  }

  private async run(): Promise<void> {
    const sends = new Set<Promise<void>>();
    let lastTaken = -Infinity;
    while (!this.stopping) {
      let taken = 0;
      const room = IN_FLIGHT - this.inFlight;
      if (room >= REFILL_AT) {
        try {
          const due = await this.webhooks.claimDue(
            room,
            this.config.WEBHOOK_CONCURRENCY_PER_ENDPOINT,
            LEASE_SECONDS,
          );
          taken = due.length;
          if (taken > 0) lastTaken = performance.now();
          for (const [d, body] of await this.bodies(due)) {
            this.inFlight++;
            const send = this.deliver(d, body).finally(() => {
              this.inFlight--;
              sends.delete(send);
              if (this.waitingForPlace) this.wake?.();
            });
            sends.add(send);
          }
        } catch (err) {
          this.logger.warn({ err }, 'webhook delivery round failed; trying again');
        }
      }
      // Full: until a place frees. Every place taken: straight on, more may be due. Otherwise a
      // while, shorter if the stream is flowing.
      if (room < REFILL_AT) {
        this.waitingForPlace = true;
        await this.sleep(LEASE_SECONDS * 1000);
        this.waitingForPlace = false;
      } else if (taken < room)
        await this.sleep(performance.now() - lastTaken < IDLE_MS ? BUSY_MS : IDLE_MS);
    }
    await Promise.all(sends);
    await this.flushAttempts();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        this.wake = null;
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * The bodies: the event as CONTRACT.md shows it, with the voice as GET /v1/voices/{id} shows it
   * (plus userId), or the provider as GET /v1/providers does, as they are at the first attempt;
   * a delivery tried before sends the body its first record kept.
   */
  private async bodies(due: ClaimedDelivery[]): Promise<[ClaimedDelivery, string][]> {
    const fresh = due.filter((d) => d.payload === null);
    const voiceIds = [
      ...new Set(fresh.flatMap((d) => (d.voiceId && !d.provider ? [d.voiceId] : []))),
    ];
    const voices = await this.webhooks.voices(voiceIds);
    const providers = new Map<ProviderName, object>();
    for (const p of new Set(fresh.flatMap((d) => (d.provider ? [d.provider] : []))))
      providers.set(p, await this.providerData(p));
    return due.map((d): [ClaimedDelivery, string] => {
      if (d.payload !== null) return [d, d.payload];
      const voice = d.voiceId ? voices.get(d.voiceId) : undefined;
      const data = d.provider
        ? providers.get(d.provider)
        : voice
          ? { ...toVoiceDto(voice, null), userId: voice.userId }
          : { id: d.voiceId };
      const timestamp = (d.sourceCreatedAt ?? d.createdAt).toISOString();
      return [d, JSON.stringify({ type: d.eventType, timestamp, data })];
    });
  }

  /**
   * The provider as GET /v1/providers shows it, from the same reads, without the side effects of
   * that route's budget view (turning a period over, reading the provider's account): a delivery
   * never calls a provider.
   */
  private async providerData(provider: ProviderName): Promise<object> {
    const account = await this.accounts.budget(provider);
    const allowance = cloneAllowance(budgetState(account), budgetSettings(this.config), Date.now());
    return toProviderStatus(await this.slots.capacity(provider), { account, allowance });
  }

  private async deliver(d: ClaimedDelivery, body: string): Promise<void> {
    const sender = this.sender;
    if (!sender) return;
    const result = await sender.send(d.url, d.secret, d.eventId, body, new Date());
    const delivered = result.status !== null && result.status >= 200 && result.status < 300;
    const schedule = this.config.WEBHOOK_RETRY_SCHEDULE_SECONDS;
    const wait = delivered ? null : (schedule[d.attempts] ?? null);
    const retryInSeconds = wait === null ? null : wait * (0.8 + Math.random() * 0.4);
    await this.recordAttempt({
      id: d.id,
      attempt: { at: new Date().toISOString(), ...result },
      delivered,
      retryInSeconds: delivered ? 0 : retryInSeconds,
      // Kept only for a retry to send again: a delivered body is never sent again (no retry of a
      // delivered delivery), and is most of the bytes its record would write.
      payload: d.payload === null && !delivered ? body : null,
    });
    const outcome = delivered ? 'delivered' : retryInSeconds === null ? 'failed' : 'retry';
    this.observer?.onAttempt(outcome, result.durationMs / 1000);
    if (outcome === 'failed')
      this.logger.warn(
        {
          deliveryId: d.id,
          endpointId: d.endpointId,
          eventType: d.eventType,
          attempts: d.attempts + 1,
        },
        'webhook delivery failed for good',
      );
  }

  /**
   * Records an attempt with the others finished meanwhile, in one statement; resolves once it is
   * written (a failed write leaves the lease to expire: the delivery is sent again, under the
   * same webhook-id, which receivers deduplicate). One write is in flight at a time and the next
   * takes everything finished while it ran, so a batch grows with the load instead of after a
   * fixed wait: each attempt's places are held until its record is written, and a fixed wait was
   * part of every delivery's turn.
   */
  private recordAttempt(f: Finished): Promise<void> {
    this.finished.push(f);
    // Not before the current I/O callbacks have run: the sends finishing with this one join it.
    this.recording ??= (this.writing ?? new Promise<void>((resolve) => setImmediate(resolve))).then(
      () => this.flushAttempts(),
    );
    return this.recording;
  }

  private async flushAttempts(): Promise<void> {
    const batch = this.finished;
    this.finished = [];
    this.recording = null;
    const write = this.webhooks.recordAttempts(batch).catch((err: unknown) => {
      this.logger.warn({ err, attempts: batch.length }, 'webhook attempts not recorded');
    });
    this.writing = write;
    await write;
    if (this.writing === write) this.writing = null;
  }
}
