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

/**
 * Listens to Postgres notifications of voice transitions (sent by every transition in the same
 * transaction), so a request waiting for `ready` is woken by the commit itself instead of polling.
 * One connection per replica, opened on the first wait.
 */
@Injectable()
export class VoiceEventsListener implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger(VoiceEventsListener.name);
  private client: Client | null = null;
  private connecting: Promise<void> | null = null;
  private readonly waiters = new Map<string, Set<Waiter>>();

  constructor(private readonly config: AppConfig) {}

  private connect(): Promise<void> {
    this.connecting ??= (async () => {
      const client = new Client({ connectionString: this.config.DATABASE_URL });
      client.on('notification', (msg) => {
        const [id, status] = (msg.payload ?? '').split(':');
        const set = this.waiters.get(id);
        if (set) for (const w of set) w(status as VoiceStatus);
      });
      client.on('error', (err) => {
        this.logger.warn({ err }, 'notification connection lost; reconnecting on next wait');
        this.client = null;
        this.connecting = null;
      });
      await client.connect();
      await client.query('LISTEN voice_status');
      this.client = client;
    })().catch((err: unknown) => {
      this.connecting = null;
      throw err;
    });
    return this.connecting;
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
    await this.client?.end().catch(() => undefined);
  }
}
