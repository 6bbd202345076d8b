import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { Client } from 'pg';
import { withTimeout } from '../common/timeout';
import { AppConfig } from '../config/config.module';
import type { VoiceStatus } from './voice-status';

/** Called with each status the voice reaches, or with null when the wait is abandoned. */
type Waiter = (status: VoiceStatus | null) => void;

/** Told of every status notification (from any replica), or with null when some may be lost. */
type StatusObserver = (voiceId: string | null, status: VoiceStatus | null) => void;

/** First pause before reconnecting, doubled per failed attempt up to the cap. */
const RECONNECT_MIN_MS = 200;
const RECONNECT_MAX_MS = 5_000;
/** A connection attempt (TCP, start-up, LISTEN) that takes longer than this is abandoned. */
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * How often the idle connection is proven alive. A peer that vanished without closing the socket
 * (a partition, a frozen server) sends no error; a ping that goes unanswered finds it.
 */
const PING_EVERY_MS = 10_000;
const PING_TIMEOUT_MS = 5_000;

/**
 * Listens to Postgres notifications of voice transitions (sent by every transition in the same
 * transaction), so a request waiting for `ready` is woken by the commit itself instead of polling,
 * in-process caches of voices (ReadyVoiceCache) hear of changes made by other replicas, and the
 * slot machinery hears of claims made elsewhere.
 *
 * One connection per replica, opened at start and kept open: when it is lost it is reopened at
 * once (with backoff while Postgres stays away), never "on next use", because several paths wait
 * on it without using it. Whatever was sent while it was down went unheard, so after every
 * (re)connection the waiters' voices are read again and the `onConnected` callbacks re-derive
 * their own state from Postgres (the reclaim wake-up, dispatch, the sweeper's timer).
 */
@Injectable()
export class VoiceEventsListener
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger(VoiceEventsListener.name);
  private client: Client | null = null;
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly observers: StatusObserver[] = [];
  private readonly connectedCallbacks: ((reconnected: boolean) => void)[] = [];
  private listeningNow = false;
  private started = false;
  private stopped = false;
  private failures = 0;
  private everConnected = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private connecting: Promise<void> | null = null;
  /** Resolved at each successful connection, for callers of listen(). */
  private connectedWaiters: (() => void)[] = [];

  constructor(private readonly config: AppConfig) {}

  onApplicationBootstrap(): void {
    this.start();
  }

  /** Starts keeping the connection open (idempotent). */
  private start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.connectSoon(0);
  }

  private connectSoon(delayMs: number): void {
    if (this.stopped || this.retryTimer || this.connecting) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connecting = this.connectOnce().then((retryInMs) => {
        // Only once this attempt is over, or connectSoon would take it for one still running.
        this.connecting = null;
        if (retryInMs !== null) this.connectSoon(retryInMs);
      });
    }, delayMs);
    // Reconnecting must not keep a stopping process alive.
    this.retryTimer.unref();
  }

  /** One attempt; resolves with the delay before the next one when it failed, else null. */
  private async connectOnce(): Promise<number | null> {
    const client = new Client({
      connectionString: this.config.DATABASE_URL,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: PING_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: PING_EVERY_MS,
    });
    client.on('notification', (msg) => {
      const [id, status] = (msg.payload ?? '').split(':') as [string, VoiceStatus];
      this.deliver(id, status);
    });
    // Errors before the connection is established reject connect() below; these are for later.
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    try {
      await withTimeout(
        (async () => {
          await client.connect();
          await client.query('LISTEN voice_status');
        })(),
        CONNECT_TIMEOUT_MS,
        'notification connection',
      );
    } catch (err) {
      this.failures++;
      const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** (this.failures - 1));
      if (this.failures === 1 || this.failures % 20 === 0)
        this.logger.warn({ err, retryInMs: delay }, 'notification connection failed; retrying');
      void client.end().catch(() => undefined);
      return delay;
    }
    if (this.stopped) {
      void client.end().catch(() => undefined);
      return null;
    }
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.failures = 0;
    this.client = client;
    this.setListening(true);
    this.pingTimer = setInterval(() => this.ping(client), PING_EVERY_MS);
    this.pingTimer.unref();
    if (reconnected) this.logger.log('notification connection restored');
    for (const resolve of this.connectedWaiters.splice(0)) resolve();
    await this.resyncWaiters(client);
    for (const callback of this.connectedCallbacks) {
      try {
        callback(reconnected);
      } catch (err) {
        this.logger.warn({ err }, 'a reconnection callback failed');
      }
    }
    return null;
  }

  private ping(client: Client): void {
    client.query('SELECT 1').catch((err: unknown) => {
      // The connection answers nothing: drop it, which reconnects.
      this.lost(client, err instanceof Error ? err : new Error(String(err)));
      void client.end().catch(() => undefined);
    });
  }

  private lost(client: Client, err?: Error): void {
    if (this.client !== client) return;
    this.client = null;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.setListening(false);
    if (this.stopped) return;
    this.logger.warn({ err }, 'notification connection lost; reconnecting');
    this.connectSoon(0);
  }

  /**
   * Notifications sent while the connection was down are lost: read the status of every voice
   * someone waits for, and hand it to the waiters as if it had been notified.
   */
  private async resyncWaiters(client: Client): Promise<void> {
    const ids = [...this.waiters.keys()];
    if (!ids.length) return;
    try {
      const rows = await client.query<{ id: string; status: VoiceStatus }>(
        `SELECT id, status FROM voices WHERE id = ANY($1::uuid[])`,
        [ids],
      );
      for (const r of rows.rows) this.deliverToWaiters(r.id, r.status);
    } catch (err) {
      // The waits still end at their timeout, and the voice is read again then.
      this.logger.warn({ err }, 'could not re-read waited-for voices after reconnecting');
    }
  }

  private deliver(id: string, status: VoiceStatus): void {
    for (const observe of this.observers) observe(id, status);
    this.deliverToWaiters(id, status);
  }

  private deliverToWaiters(id: string, status: VoiceStatus): void {
    const set = this.waiters.get(id);
    if (set) for (const w of [...set]) w(status);
  }

  /**
   * True while notifications are being received. Whatever changes while it is false goes
   * unheard: observers are told (null) when it becomes false, and must not trust what they hold.
   */
  get listening(): boolean {
    return this.listeningNow;
  }

  /** Resolves once the connection is open, or rejects after a bounded wait. */
  async listen(): Promise<void> {
    this.start();
    if (this.listeningNow) return;
    await withTimeout(
      new Promise<void>((resolve) => this.connectedWaiters.push(resolve)),
      CONNECT_TIMEOUT_MS,
      'voice notifications',
    );
  }

  /** Registers an observer of every notification, for the life of the process. */
  observe(observer: StatusObserver): void {
    this.observers.push(observer);
  }

  /**
   * Called after every connection is established (`reconnected` false for the first): whatever
   * was announced while it was down went unheard, so state derived from notifications, or from
   * work that may have failed meanwhile, is derived again from Postgres.
   */
  onConnected(callback: (reconnected: boolean) => void): void {
    this.connectedCallbacks.push(callback);
  }

  private setListening(value: boolean): void {
    if (this.listeningNow === value) return;
    this.listeningNow = value;
    if (!value) for (const observe of this.observers) observe(null, null);
  }

  /**
   * Resolves with the first status in `until` that the voice reaches, or null after `timeoutMs`.
   * Subscribe before re-reading the voice, so a transition between the read and the wait is seen.
   * Never waits for the connection: a transition announced while it is down is found by the
   * re-read after reconnecting.
   */
  // eslint-disable-next-line @typescript-eslint/require-await -- kept async for its callers
  async subscribe(
    voiceId: string,
    until: readonly VoiceStatus[],
    timeoutMs: number,
  ): Promise<{ wait: Promise<VoiceStatus | null>; cancel: () => void }> {
    this.start();
    let cancel = (): void => undefined;
    const wait = new Promise<VoiceStatus | null>((resolve) => {
      const set = this.waiters.get(voiceId) ?? new Set<Waiter>();
      this.waiters.set(voiceId, set);
      const done = (status: VoiceStatus | null): void => {
        clearTimeout(timer);
        set.delete(waiter);
        if (set.size === 0 && this.waiters.get(voiceId) === set) this.waiters.delete(voiceId);
        resolve(status);
      };
      const waiter: Waiter = (status) => {
        if (status === null || until.includes(status)) done(status);
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      set.add(waiter);
      cancel = () => done(null);
    });
    return { wait, cancel };
  }

  /** Waits registered now (long-polling activations of this replica). */
  get waiterCount(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  /** Long-polling activations answer now, so the HTTP server can close without waiting them out. */
  beforeApplicationShutdown(): void {
    for (const set of this.waiters.values()) for (const w of [...set]) w(null);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    const client = this.client;
    this.client = null;
    this.setListening(false);
    await client?.end().catch(() => undefined);
  }
}
