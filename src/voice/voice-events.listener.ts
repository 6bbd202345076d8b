import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { Client } from 'pg';
import { AppConfig } from '../config/config.module';
import type { VoiceStatus } from './voice-status';

/** Called with each status the voice reaches, or with null when the wait is abandoned. */
type Waiter = (status: VoiceStatus | null) => void;

/** Told of every status notification (from any replica), or with null when some may be lost. */
type StatusObserver = (voiceId: string | null, status: VoiceStatus | null) => void;

/**
 * Listens to Postgres notifications of voice transitions (sent by every transition in the same
 * transaction), so a request waiting for `ready` is woken by the commit itself instead of polling,
 * and in-process caches of voices (ReadyVoiceCache) hear of changes made by other replicas.
 * One connection per replica, opened on the first wait or by `listen()`.
 */
@Injectable()
export class VoiceEventsListener implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger(VoiceEventsListener.name);
  private client: Client | null = null;
  private connecting: Promise<void> | null = null;
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly observers: StatusObserver[] = [];
  private listeningNow = false;

  constructor(private readonly config: AppConfig) {}

  private connect(): Promise<void> {
    this.connecting ??= (async () => {
      const client = new Client({ connectionString: this.config.DATABASE_URL });
      client.on('notification', (msg) => {
        const [id, status] = (msg.payload ?? '').split(':') as [string, VoiceStatus];
        for (const observe of this.observers) observe(id, status);
        const set = this.waiters.get(id);
        if (set) for (const w of set) w(status);
      });
      const lost = (err?: Error): void => {
        if (this.client !== client) return;
        if (err)
          this.logger.warn({ err }, 'notification connection lost; reconnecting on next use');
        this.client = null;
        this.connecting = null;
        this.setListening(false);
      };
      client.on('error', lost);
      client.on('end', () => lost());
      try {
        await client.connect();
        await client.query('LISTEN voice_status');
      } catch (err) {
        await client.end().catch(() => undefined);
        throw err;
      }
      this.client = client;
      this.setListening(true);
    })().catch((err: unknown) => {
      this.connecting = null;
      throw err;
    });
    return this.connecting;
  }

  /**
   * True while notifications are being received. Whatever changes while it is false goes
   * unheard: observers are told (null) when it becomes false, and must not trust what they hold.
   */
  get listening(): boolean {
    return this.listeningNow;
  }

  /** Opens the connection if it is not open; failures are retried by the next call. */
  async listen(): Promise<void> {
    await this.connect();
  }

  /** Registers an observer of every notification, for the life of the process. */
  observe(observer: StatusObserver): void {
    this.observers.push(observer);
  }

  private setListening(value: boolean): void {
    if (this.listeningNow === value) return;
    this.listeningNow = value;
    if (!value) for (const observe of this.observers) observe(null, null);
  }

  /**
   * Resolves with the first status in `until` that the voice reaches, or null after `timeoutMs`.
   * Subscribe before re-reading the voice, so a transition between the read and the wait is seen.
   */
  async subscribe(
    voiceId: string,
    until: readonly VoiceStatus[],
    timeoutMs: number,
  ): Promise<{ wait: Promise<VoiceStatus | null>; cancel: () => void }> {
    await this.connect();
    let cancel = (): void => undefined;
    const wait = new Promise<VoiceStatus | null>((resolve) => {
      const set = this.waiters.get(voiceId) ?? new Set<Waiter>();
      this.waiters.set(voiceId, set);
      const done = (status: VoiceStatus | null): void => {
        clearTimeout(timer);
        set.delete(waiter);
        if (set.size === 0) this.waiters.delete(voiceId);
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

  /** Long-polling activations answer now, so the HTTP server can close without waiting them out. */
  beforeApplicationShutdown(): void {
    for (const set of this.waiters.values()) for (const w of [...set]) w(null);
  }

  async onApplicationShutdown(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.setListening(false);
    await client?.end().catch(() => undefined);
  }
}
