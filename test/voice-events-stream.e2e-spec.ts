import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { until } from './support/cluster';

interface SseEvent {
  id: string;
  type: string;
  body: { type: string; timestamp: string; data: { id: string; userId: string; status: string } };
}

/**
 * A server-sent event client as a browser's EventSource reads the stream: it parses `id:`,
 * `event:`, `data:` and comments, and remembers the last event id for a reconnection.
 */
class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  status = 0;
  headers: Headers | null = null;
  problem: { code?: string; status?: number } | null = null;
  private readonly abort = new AbortController();
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: ApiClient,
    private readonly resume: { header?: string; query?: string } = {},
  ) {}

  async open(): Promise<this> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.api.token}`,
      accept: 'text/event-stream',
    };
    if (this.resume.header) headers['last-event-id'] = this.resume.header;
    const q = this.resume.query ? `?lastEventId=${encodeURIComponent(this.resume.query)}` : '';
    const res = await fetch(`${this.api.baseUrl}/v1/voices/events${q}`, {
      headers,
      signal: this.abort.signal,
    });
    this.status = res.status;
    this.headers = res.headers;
    if (res.status !== 200) {
      this.problem = (await res.json()) as { code?: string; status?: number };
      return this;
    }
    this.reading = this.read(res.body!).catch(() => undefined);
    return this;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields: Record<string, string> = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
          else if (line) {
            const at = line.indexOf(':');
            const name = line.slice(0, at);
            fields[name] = (fields[name] ? `${fields[name]}\n` : '') + line.slice(at + 2);
          }
        }
        if (fields.data !== undefined)
          this.events.push({
            id: fields.id,
            type: fields.event,
            body: JSON.parse(fields.data) as SseEvent['body'],
          });
      }
    }
  }

  get lastId(): string | undefined {
    return this.events[this.events.length - 1]?.id;
  }

  of(voiceId: string, type?: string): SseEvent[] {
    return this.events.filter((e) => e.body.data.id === voiceId && (!type || e.type === type));
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.reading;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * GET /v1/voices/events (CONTRACT.md "Push notifications"): each user's own voice events, live;
 * a reconnection with Last-Event-ID replays exactly what it missed; heartbeats; the open streams
 * count against the long-poll caps.
 */
describe('voice event stream', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;
  let alice: ApiClient;
  let bob: ApiClient;
  const clients: SseClient[] = [];
  const sse = async (api: ApiClient, resume?: { header?: string; query?: string }) => {
    const c = await new SseClient(api, resume).open();
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 20, cartesia: 20 } });
    service = await world.start({
      ...sandboxEnv(sandbox),
      VOICE_EVENTS_HEARTBEAT_SECONDS: '1',
      LONG_POLL_MAX_PER_USER: '3',
      LONG_POLL_MAX_PER_REPLICA: '5',
    });
    alice = new ApiClient(service.url, 'alice');
    bob = new ApiClient(service.url, 'bob');
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await world.dispose();
    await sandbox?.close();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  const readyVoice = async (api: ApiClient, name: string) => {
    const res = await api.upload({ name });
    expect(res.status).toBe(202);
    expect((await api.waitFor(res.body.id, ['ready', 'failed'])).status).toBe('ready');
    return res.body.id as string;
  };

  it("shows a client its own voices' events and none of another user's", async () => {
    const a = await sse(alice);
    const b = await sse(bob);
    expect(a.status).toBe(200);
    expect(a.headers?.get('content-type')).toMatch(/^text\/event-stream/);
    const mine = await readyVoice(alice, 'Grandma');
    const his = await readyVoice(bob, 'Grandpa');
    const event = await until('alice sees voice.ready', () => a.of(mine, 'voice.ready')[0]);
    expect(event.body).toMatchObject({
      type: 'voice.ready',
      data: { id: mine, userId: 'alice', status: 'ready' },
    });
    expect(event.id).toMatch(/^\d+$/);
    await until('bob sees voice.ready', () => b.of(his, 'voice.ready')[0]);
    // Delivered in the same ticks as the others' events: had they been sent, they would be here.
    await sleep(500);
    expect(a.events.every((e) => e.body.data.userId === 'alice')).toBe(true);
    expect(b.events.every((e) => e.body.data.userId === 'bob')).toBe(true);
    expect(a.of(his)).toEqual([]);
    expect(b.of(mine)).toEqual([]);
  }, 60_000);

  it('replays exactly what a reconnecting client missed, then continues live', async () => {
    // The reference: a client connected the whole time.
    const all = await sse(alice);
    const first = await sse(alice);
    const v1 = await readyVoice(alice, 'One');
    await until('first sees v1', () => first.of(v1, 'voice.ready')[0]);
    const seen = first.lastId!;
    await first.close();
    // Missed while away: a delete and another voice becoming ready.
    expect((await alice.request('DELETE', `/v1/voices/${v1}`)).status).toBe(202);
    const v2 = await readyVoice(alice, 'Two');
    await until('reference sees both', () => all.of(v1, 'voice.deleted')[0] && all.of(v2)[0]);
    const back = await sse(alice, { header: seen });
    const missed = () => all.events.slice(all.events.findIndex((e) => e.id === seen) + 1);
    await until('the replay', () => back.events.length >= missed().length || undefined);
    // And live after the replay, with nothing repeated.
    const v3 = await readyVoice(alice, 'Three');
    await until('live after replay', () => back.of(v3, 'voice.ready')[0]);
    await until('reference sees v3', () => all.of(v3, 'voice.ready')[0]);
    await sleep(500);
    const ids = (c: SseClient) => c.events.map((e) => `${e.id} ${e.type}`);
    expect(ids(back)).toEqual(missed().map((e) => `${e.id} ${e.type}`));
    expect(back.of(v1).map((e) => e.type)).toEqual(['voice.deleted']);
    // The query parameter does the same, for clients that cannot set the header.
    const viaQuery = await sse(alice, { query: seen });
    await until('replay by query', () => viaQuery.events.length >= missed().length || undefined);
    await sleep(300);
    expect(ids(viaQuery)).toEqual(ids(back));
  }, 90_000);

  it('sends an event committed after a later-numbered one (ids commit out of order)', async () => {
    const v = await readyVoice(alice, 'Order');
    const s = await sse(alice);
    await sleep(500);
    const copy = `INSERT INTO voice_events (voice_id, type, reason, from_status, to_status)
                  SELECT voice_id, type, reason, 'allocating', 'ready' FROM voice_events
                   WHERE voice_id = $1 AND to_status = 'ready' LIMIT 1 RETURNING id::text`;
    const early = await world.db(async (slow) => {
      await slow.query('BEGIN');
      // Takes the lower id and holds it uncommitted while a higher one commits.
      const [{ id: low }] = (await slow.query<{ id: string }>(copy, [v])).rows;
      const high = await world.db(
        async (fast) => (await fast.query<{ id: string }>(copy, [v])).rows[0].id,
      );
      expect(BigInt(high)).toBeGreaterThan(BigInt(low));
      await sleep(1000);
      await slow.query('COMMIT');
      return { low, high };
    });
    await until('both events', () =>
      [early.low, early.high].every((id) => s.events.some((e) => e.id === id)),
    );
  }, 60_000);

  it('sends a heartbeat comment', async () => {
    const s = await sse(bob);
    await until('a ping', () => s.comments.includes('ping'), 5_000);
  });

  it('counts open streams against the long-poll caps and releases them on disconnect', async () => {
    const carol = new ApiClient(service.url, 'carol');
    const dave = new ApiClient(service.url, 'dave');
    const c = [await sse(carol), await sse(carol), await sse(carol)];
    expect(c.map((x) => x.status)).toEqual([200, 200, 200]);
    const over = await sse(carol);
    expect(over.status).toBe(429);
    expect(over.problem).toMatchObject({ code: 'rate_limited', status: 429 });
    expect(over.headers?.get('retry-after')).toMatch(/^\d+$/);
    // The replica's cap counts every user's streams.
    const d = [await sse(dave), await sse(dave)];
    expect(d.map((x) => x.status)).toEqual([200, 200]);
    const full = await sse(new ApiClient(service.url, 'erin'));
    expect(full.status).toBe(503);
    expect(full.problem).toMatchObject({ code: 'service_unavailable' });
    expect(full.headers?.get('retry-after')).toMatch(/^\d+$/);
    // A closed stream gives its place back.
    await c[0].close();
    const again = await until('a place again', async () => {
      const x = await sse(carol);
      return x.status === 200 ? x : undefined;
    });
    expect(again.status).toBe(200);
  }, 60_000);

  it('refuses a Last-Event-ID that is not one of its ids', async () => {
    const s = await sse(alice, { header: 'evt-nonsense' });
    expect(s.status).toBe(422);
    expect((await sse(new ApiClient(service.url, 'zed', 'voices:write'))).status).toBe(403);
  });
});
