import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import createClient from 'openapi-fetch';
import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import type { paths } from './generated/openapi';
import { sandboxEnv } from './support/sandbox-env';
import { ServiceProcess, TestWorld } from './support/service';
import { makeToken } from './support/token';
import { makeWav } from './support/wav';

const ROOT = resolve(__dirname, '..');
const committedSpec = (): unknown => JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8'));

/**
 * The OpenAPI document as a contract clients are generated from: the committed openapi.json is
 * what the running service serves (and what `npm run openapi` writes), the committed TypeScript
 * types are what openapi-typescript makes of it, and a client built from those types alone (no
 * hand-written request or response type) runs the README's flow.
 */
describe('OpenAPI document and a generated client', () => {
  const world = new TestWorld();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 5, cartesia: 5 } });
    service = await world.start(sandboxEnv(sandbox));
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
  });

  it('serves exactly the committed openapi.json (run `npm run openapi` after changing the API)', async () => {
    const served: unknown = await (await fetch(`${service.url}/docs-json`)).json();
    expect(served).toEqual(committedSpec());
  });

  it('commits the types openapi-typescript generates from it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vs-openapi-'));
    try {
      const out = join(dir, 'openapi.ts');
      execFileSync(
        process.execPath,
        [join(ROOT, 'node_modules/openapi-typescript/bin/cli.js'), 'openapi.json', '-o', out],
        { cwd: ROOT, stdio: 'pipe' },
      );
      expect(readFileSync(join(ROOT, 'test/generated/openapi.ts'), 'utf8')).toBe(
        readFileSync(out, 'utf8'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the README flow with openapi-fetch on the generated types', async () => {
    const api = createClient<paths>({
      baseUrl: service.url,
      headers: { Authorization: `Bearer ${makeToken('openapi-user', 'voices:read voices:write')}` },
    });
    const wav = makeWav(3, 16_000, 1);
    const upload = (name: string) =>
      api.POST('/v1/voices', {
        params: { header: { 'Idempotency-Key': `key-${name}` } },
        body: { name, provider: 'elevenlabs', file: 'grandma.wav' },
        // The spec types the file as a binary string; the request sends the real bytes.
        bodySerializer: (b) => {
          const form = new FormData();
          form.set('name', b.name);
          form.set('provider', b.provider);
          form.set('file', new Blob([new Uint8Array(wav)], { type: 'audio/wav' }), b.file);
          return form;
        },
      });

    const first = await upload('Grandma');
    expect(first.response.status).toBe(202);
    expect(first.data?.status).toBe('pending');
    const id = first.data?.id ?? '';
    // The same key again: the first answer, marked as replayed.
    const again = await upload('Grandma');
    expect(again.data?.id).toBe(id);
    expect(again.response.headers.get('idempotent-replayed')).toBe('true');

    let status = first.data?.status;
    for (let i = 0; i < 200 && status !== 'ready' && status !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const read = await api.GET('/v1/voices/{id}', { params: { path: { id } } });
      status = read.data?.status;
    }
    expect(status).toBe('ready');

    const activated = await api.POST('/v1/voices/{id}/activate', {
      params: { path: { id }, query: { waitSeconds: 10 } },
    });
    expect(activated.response.status).toBe(200);
    expect(activated.data?.remoteVoiceId).toEqual(expect.any(String));

    await upload('Grandpa');
    await upload('Aunt');
    const page1 = await api.GET('/v1/voices', { params: { query: { limit: 2 } } });
    expect(page1.data?.items).toHaveLength(2);
    const cursor = page1.data?.nextCursor ?? undefined;
    expect(cursor).toEqual(expect.any(String));
    const page2 = await api.GET('/v1/voices', { params: { query: { limit: 2, cursor } } });
    const names = [...(page1.data?.items ?? []), ...(page2.data?.items ?? [])].map((v) => v.name);
    expect(names.sort()).toEqual(['Aunt', 'Grandma', 'Grandpa']);

    const deleted = await api.DELETE('/v1/voices/{id}', { params: { path: { id } } });
    expect(deleted.response.status).toBe(202);

    // An error answer, typed by the spec as a Problem, whose type URI opens a page.
    const missing = await api.GET('/v1/voices/{id}', {
      params: { path: { id: '00000000-0000-4000-8000-000000000000' } },
    });
    expect(missing.response.status).toBe(404);
    expect(missing.response.headers.get('content-type')).toContain('application/problem+json');
    expect(missing.error?.code).toBe('voice_not_found');
    const page = await fetch(new URL(missing.error?.type ?? '', service.url));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('voice_not_found');
  });
});
