import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Pool } from 'pg';
import { Webhook } from 'standardwebhooks';
import type { TestWorld } from '../../../test/support/service';
import { sleep } from '../../lib/common';
import { insertQueued } from '../../lib/world';

/**
 * A receiver as an app runs it: verifies each delivery's signature with the standardwebhooks
 * library and notes when each webhook-id first arrived (performance.now(), the same clock as the
 * commits the benchmark times).
 */
export class Receiver {
  secret = '';
  readonly firstSeen = new Map<string, number>();
  requests = 0;
  badSignatures = 0;
  private server: Server | null = null;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = performance.now();
        this.requests++;
        const id = String(req.headers['webhook-id']);
        try {
          new Webhook(this.secret).verify(Buffer.concat(chunks).toString('utf8'), {
            'webhook-id': id,
            'webhook-timestamp': String(req.headers['webhook-timestamp']),
            'webhook-signature': String(req.headers['webhook-signature']),
          });
          if (!this.firstSeen.has(id)) this.firstSeen.set(id, at);
          res.writeHead(204).end();
        } catch {
          this.badSignatures++;
          res.writeHead(400).end();
        }
      });
    });
    const server = this.server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }
}

/**
 * Writes voice.failed events as a transition would (a voice_events row; the outbox trigger fans
 * it out to the endpoint in the same statement) at a steady rate, and notes when each commit was
 * acknowledged: the start of "event committed → webhook received".
 */
export class EventSource {
  readonly committedAt = new Map<string, number>();
  errors = 0;
  private running = false;
  private loop: Promise<void> | null = null;

  /**
   * `unsubscribed`: the events are voice.reclaimed rows instead, which the benchmark's endpoint
   * does not take, so the same writes go in with nothing to deliver.
   */
  constructor(
    private readonly pool: Pool,
    private readonly voiceIds: string[],
    private readonly unsubscribed = false,
  ) {}

  start(perSecond: number): void {
    this.running = true;
    // Batches every 10 ms at high rates (one statement, one commit each), single rows below.
    const perBatch = Math.max(1, Math.round(perSecond / 100));
    const everyMs = (1000 * perBatch) / perSecond;
    this.loop = (async () => {
      const t0 = performance.now();
      let batches = 0;
      let k = 0;
      while (this.running) {
        const ids = Array.from(
          { length: perBatch },
          () => this.voiceIds[k++ % this.voiceIds.length],
        );
        try {
          const { rows } = await this.pool.query<{ id: string }>(
            `INSERT INTO voice_events (voice_id, type, reason, from_status, to_status)
             SELECT v, $2::text::voice_event_type, 'provider_fatal', $3::text::voice_status,
                    $2::text::voice_status
               FROM unnest($1::uuid[]) v
             RETURNING id::text`,
            this.unsubscribed ? [ids, 'reclaimed', 'ready'] : [ids, 'failed', 'allocating'],
          );
          const at = performance.now();
          for (const r of rows) this.committedAt.set(`evt_${r.id}`, at);
        } catch {
          this.errors++;
        }
        batches++;
        const wait = t0 + batches * everyMs - performance.now();
        if (wait > 0) await sleep(wait);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Voices the events are about: `failed`, so no worker ever picks them up. */
export async function eventVoices(world: TestWorld, sampleBytes: number): Promise<string[]> {
  return world.db(async (c) => {
    await insertQueued(c, {
      count: 100,
      provider: 'cartesia',
      users: 10,
      userPrefix: 'events-',
      sampleBytes,
    });
    const { rows } = await c.query<{ id: string }>(
      `UPDATE voices SET status = 'failed' WHERE user_id LIKE 'events-%' RETURNING id`,
    );
    return rows.map((r) => r.id);
  });
}
