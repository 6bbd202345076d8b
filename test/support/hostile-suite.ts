import { ApiClient } from './api';
import { foreignIds, problemShape, storedFiles, subjectOf, voiceRows } from './hostile';
import { multipart, send, uploadForm, type Part, type RawAnswer } from './multipart';
import { ServiceProcess, TestWorld } from './service';
import { makeWav } from './wav';

export const MAX_BYTES = 1_000_000;
export const ALLOWED_ORIGIN = 'https://app.example.com';

/** What a hostile-input suite's tests use: the service, two users and the checked request helpers. */
export interface Hostile {
  world: TestWorld;
  readonly service: ServiceProcess;
  readonly alice: ApiClient;
  readonly bob: ApiClient;
  accepted: Set<string>;
  owners: Map<string, string>;
  fiveHundreds: string[];
  crossTenant: string[];
  cacheable: string[];
  PRIVATE_NAME: string;
  call(
    method: string,
    path: string,
    opts?: {
      token?: string | null;
      headers?: Record<string, string>;
      body?: Buffer | string;
      close?: boolean;
    },
  ): Promise<RawAnswer>;
  upload(
    parts: Part[],
    opts?: { token?: string | null; boundary?: string; terminate?: boolean },
  ): Promise<RawAnswer>;
  wav: () => Buffer;
}

/**
 * One of the test/security-*.e2e-spec.ts suites: its own service, `tests` run against it, then the
 * same "afterwards" checks over everything that suite sent (each file is checked for itself).
 * Together: the service against hostile clients, over HTTP: malformed multipart, audio that lies, names and
 * injection strings, wrong types, bad tokens, other users' voices, and a few thousand generated
 * requests. Nothing may answer 5xx, every error is a problem document, the service keeps serving,
 * and a rejected request leaves neither a row nor a file. Rate limits are set out of reach here;
 * rate-limiter.e2e-spec.ts and rate-limits.e2e-spec.ts test them.
 */
export function describeHostile(title: string, tests: (h: Hostile) => void): void {
  describe(title, () => {
    const world = new TestWorld();
    let service: ServiceProcess;
    let alice: ApiClient;
    let bob: ApiClient;

    /** Every voice the service accepted (202) in this suite: the only rows allowed to exist. */
    const accepted = new Set<string>();
    /** Who uploaded each accepted voice: no one else may ever be shown its id. */
    const owners = new Map<string, string>();
    const fiveHundreds: string[] = [];
    /** Answers that showed a user something of another user's (ids, or alice's private name). */
    const crossTenant: string[] = [];
    /** /v1 answers that a browser or proxy would be allowed to cache. */
    const cacheable: string[] = [];
    const PRIVATE_NAME = `Private ${Math.random().toString(36).slice(2)}`;
    /** Routes where an admin sees every user's voices. */
    const ADMIN_VIEWS = /^\/(v1\/admin\/|admin\/queues)/;

    beforeAll(async () => {
      service = await world.start({
        MAX_SAMPLE_BYTES: String(MAX_BYTES),
        MIN_SAMPLE_SECONDS: '1',
        MAX_SAMPLE_SECONDS: '60',
        USER_MAX_PENDING: '100000',
        RATE_LIMIT_UPLOADS_PER_MINUTE: '1000000',
        RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '1000000',
        CORS_ORIGINS: ALLOWED_ORIGIN,
        // Room at the in-process provider sandbox for every voice accepted here.
        SANDBOX_VOICE_LIMIT: '100000',
        CARTESIA_SLOT_LIMIT: '100000',
        LOG_LEVEL: 'error',
      });
      alice = new ApiClient(service.url, 'alice');
      bob = new ApiClient(service.url, 'bob');
    }, 60_000);

    afterAll(async () => {
      await world.dispose();
    }, 30_000);

    /** Sends a request and checks what every answer must satisfy, whatever was sent. */
    async function call(
      method: string,
      path: string,
      opts: {
        token?: string | null;
        headers?: Record<string, string>;
        body?: Buffer | string;
        close?: boolean;
      } = {},
    ): Promise<RawAnswer> {
      const headers: Record<string, string> = { ...opts.headers };
      const token = opts.token === undefined ? alice.token : opts.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const res = await send(`${service.url}${path}`, {
        method,
        headers,
        body: opts.body,
        close: opts.close,
      });
      if (res.status >= 500) fiveHundreds.push(`${method} ${path} -> ${res.status} ${res.text}`);
      if (res.status >= 400) {
        const contentType = res.headers['content-type'] as string;
        // A HEAD answer has the headers of the GET answer and no body.
        const issues =
          method !== 'HEAD'
            ? problemShape(res.status, contentType, res.json)
            : String(contentType).startsWith('application/problem+json')
              ? []
              : [`content-type ${contentType}`];
        if (issues.length) throw new Error(`${method} ${path} ${res.status}: ${issues.join(', ')}`);
      }
      // The path as sent: the URL parser resolves dot segments, `%2e%2e` included.
      const sent = new URL(`${service.url}${path}`).pathname;
      if (/^\/v1\//i.test(sent) && res.headers['cache-control'] !== 'no-store')
        cacheable.push(`${method} ${path} -> ${res.status}`);
      const user = subjectOf(token);
      if (method === 'POST' && /^\/v1\/voices(\?|$)/.test(path) && res.status === 202 && user) {
        accepted.add(res.json.id);
        owners.set(res.json.id, user);
      }
      if (res.status < 300 && user && !ADMIN_VIEWS.test(path)) {
        const foreign = foreignIds(res.text, user, owners);
        if (user !== 'alice' && res.text.includes(PRIVATE_NAME)) foreign.push(PRIVATE_NAME);
        if (foreign.length)
          crossTenant.push(
            `${user}: ${method} ${path} -> ${res.status} showed ${foreign.join(', ')}`,
          );
      }
      return res;
    }

    async function upload(
      parts: Part[],
      opts: { token?: string | null; boundary?: string; terminate?: boolean } = {},
    ): Promise<RawAnswer> {
      const { body, contentType } = multipart(parts, opts);
      return call('POST', '/v1/voices', {
        token: opts.token,
        headers: { 'content-type': contentType },
        body,
      });
    }

    const wav = () => makeWav(1.5);

    tests({
      world,
      get service() {
        return service;
      },
      get alice() {
        return alice;
      },
      get bob() {
        return bob;
      },
      accepted,
      owners,
      fiveHundreds,
      crossTenant,
      cacheable,
      PRIVATE_NAME,
      call,
      upload,
      wav,
    });

    describe('afterwards', () => {
      it('still serves good requests', async () => {
        expect((await fetch(`${service.url}/health/ready`)).status).toBe(200);
        const res = await upload(uploadForm(makeWav(2), { name: 'After the storm' }));
        expect(res.status).toBe(202);
        const voice = await alice.waitFor(res.json.id, ['queued', 'allocating', 'ready']);
        expect(voice.sample?.durationMs).toBe(2000);
        expect((await call('GET', '/v1/voices?limit=5')).status).toBe(200);
      });

      it('kept a row for every accepted upload, a file for every live voice, and nothing else', async () => {
        const rows = await voiceRows(world);
        expect(new Set(rows.map((r) => r.id))).toEqual(accepted);
        const live = new Set(rows.filter((r) => r.status !== 'deleted').map((r) => r.id));
        // The sweep deleted some voices: their samples go with their clean-up jobs, soon after.
        let files = storedFiles(world);
        for (let i = 0; i < 300 && files.some((f) => !live.has(f)); i++) {
          await new Promise((r) => setTimeout(r, 100));
          files = storedFiles(world);
        }
        expect(files.filter((f) => !live.has(f))).toEqual([]);
        expect([...live].filter((id) => !files.includes(id))).toEqual([]);
        process.stdout.write(
          `after the sweep: ${rows.length} voices accepted, ${rows.length - live.size} deleted, ${files.length} sample files (one per live voice)\n`,
        );
      });

      it('answered no request above with a 5xx, and is still the same process', async () => {
        expect(fiveHundreds).toEqual([]);
        expect(cacheable).toEqual([]);
        expect(service.output).not.toMatch(/Unhandled|uncaught|FATAL/i);
        expect((await fetch(`${service.url}/health/live`)).status).toBe(200);
      });
    });
  });
}
