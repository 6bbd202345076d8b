import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  id: string;
  type: string;
  data: {
    id: string;
    userId: string;
    status: string;
    remoteVoiceId: string | null;
    // provider.* events: the provider as GET /v1/providers shows it.
    provider?: string;
    breaker?: string;
    churn?: { used: number; limit: number | null; remaining: number | null; exhausted: boolean };
  };
}

/**
 * A webhook receiver as an app would run it: it verifies every request's signature with the
 * standardwebhooks library (a bad one fails the test), deduplicates by webhook-id, and can be made
 * to refuse connections, answer 500 or hang, to see the retries.
 */
export class Receiver {
  mode: 'ok' | '500' | 'hang' = 'ok';
  secret = '';
  readonly requests: { id: string; at: number; mode: string }[] = [];
  readonly events = new Map<string, Received>();
  readonly badSignatures: string[] = [];
  private server: Server | null = null;
  private hanging: ServerResponse[] = [];
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Stops listening: deliveries meet a refused connection. */
  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging = [];
    const server = this.server;
    this.server = null;
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const id = String(req.headers['webhook-id']);
    this.requests.push({ id, at: Date.now(), mode: this.mode });
    if (this.mode === 'hang') {
      this.hanging.push(res);
      return;
    }
    if (this.mode === '500') {
      res.writeHead(500).end();
      return;
    }
    try {
      const event = new Webhook(this.secret).verify(body, {
        'webhook-id': id,
        'webhook-timestamp': String(req.headers['webhook-timestamp']),
        'webhook-signature': String(req.headers['webhook-signature']),
      }) as Omit<Received, 'id'>;
      if (!this.events.has(id)) this.events.set(id, { id, ...event });
      res.writeHead(204).end();
    } catch {
      this.badSignatures.push(id);
      res.writeHead(400).end();
    }
  }

  of(type: string, voiceId: string): Received[] {
    return [...this.events.values()].filter((e) => e.type === type && e.data.id === voiceId);
  }

  ofProvider(type: string, provider: string): Received[] {
    return [...this.events.values()].filter((e) => e.type === type && e.data.provider === provider);
  }
}
