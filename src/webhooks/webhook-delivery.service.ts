import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { toProviderStatus } from '../admin/admin.dto';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { hasRole } from '../config/roles';
import { cloneAllowance, budgetSettings } from '../policy/clone-budget';
import { budgetState, ProviderAccountsRepository } from '../providers/provider-accounts.repository';
import { SlotsRepository } from '../slots/slots.repository';
import { toVoiceDto } from '../voice/voice.dto';
import { VoiceRepository } from '../voice/voice.repository';
import { WebhookSender } from './webhook-sender';
import { WebhooksRepository, type ClaimedDelivery } from './webhooks.repository';

/** Deliveries taken per round by one worker. */
const BATCH = 32;
/**
 * A taken delivery is another worker's again after this (a killed worker's, say): the send's own
 * deadline (15 s) plus a margin to record its outcome.
 */
const LEASE_SECONDS = 20;
/**
 * Idle rounds look for due deliveries this often (new ones are due at once, retries later): one
 * indexed query per worker every half second, instead of a listener that would be one more
 * connection to keep alive per replica.
 */
const IDLE_MS = 500;

export interface DeliveryObserver {
  onAttempt(outcome: 'delivered' | 'retry' | 'failed', seconds: number): void;
}

/**
 * The worker role's webhook deliveries, driven from Postgres: rounds take the due deliveries
 * under a lease (at most WEBHOOK_CONCURRENCY_PER_ENDPOINT per endpoint), send them concurrently,
 * and record each attempt; a failure is due again after the next wait of the schedule, with
 * ±20 % jitter so a receiver coming back is not hit by every retry at once. Nothing is in memory
 * beyond the round in flight, so a receiver down for hours costs rows, not RAM, and every event
 * is sent when it returns.
 */
@Injectable()
export class WebhookDeliveryService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookDeliveryService.name);
  private sender: WebhookSender | null = null;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private observer: DeliveryObserver | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly webhooks: WebhooksRepository,
    private readonly voices: VoiceRepository,
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
    while (!this.stopping) {
      let taken = 0;
      try {
        const due = await this.webhooks.claimDue(
          BATCH,
          this.config.WEBHOOK_CONCURRENCY_PER_ENDPOINT,
          LEASE_SECONDS,
        );
        taken = due.length;
        await Promise.all(due.map((d) => this.deliver(d)));
      } catch (err) {
        this.logger.warn({ err }, 'webhook delivery round failed; trying again');
      }
      if (taken < BATCH) await this.sleep(IDLE_MS);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * The body: the event as CONTRACT.md shows it, with the voice as GET /v1/voices/{id} shows it
   * (plus userId), or the provider as GET /v1/providers does, as they are at the first attempt.
   */
  private async body(d: ClaimedDelivery): Promise<string> {
    if (d.payload !== null) return d.payload;
    const data = d.provider ? await this.providerData(d.provider) : await this.voiceData(d.voiceId);
    const body = JSON.stringify({
      type: d.eventType,
      timestamp: (d.sourceCreatedAt ?? d.createdAt).toISOString(),
      data,
    });
    return this.webhooks.fixPayload(d.id, body);
  }

  private async voiceData(voiceId: string | null): Promise<object> {
    const voice = voiceId ? await this.voices.findById(voiceId) : null;
    return voice ? { ...toVoiceDto(voice, null), userId: voice.userId } : { id: voiceId };
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

  private async deliver(d: ClaimedDelivery): Promise<void> {
    const sender = this.sender;
    if (!sender) return;
    const body = await this.body(d);
    const result = await sender.send(d.url, d.secret, d.eventId, body, new Date());
    const delivered = result.status !== null && result.status >= 200 && result.status < 300;
    const schedule = this.config.WEBHOOK_RETRY_SCHEDULE_SECONDS;
    const wait = delivered ? null : (schedule[d.attempts] ?? null);
    const retryInSeconds = wait === null ? null : wait * (0.8 + Math.random() * 0.4);
    await this.webhooks.recordAttempt(
      d.id,
      { at: new Date().toISOString(), ...result },
      { delivered, retryInSeconds: delivered ? 0 : retryInSeconds },
    );
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
}
