import { ExpressAdapter } from '@nestjs/platform-express';
import express, { type Request, type Response } from 'express';
import type { AddressInfo } from 'node:net';
import { ApiExpressAdapter } from './api-express.adapter';
import { weakEtag } from './etag';

/** An Express app answering every request through `adapter.reply`, as Nest's router does. */
async function serve(adapter: ExpressAdapter, body: unknown, status?: number) {
  const app = express();
  app.set('etag', weakEtag);
  app.all('/{*any}', (_req: Request, res: Response) => void adapter.reply(res, body, status));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, close: () => new Promise((r) => server.close(r)) };
}

async function answer(url: string, init: RequestInit) {
  const res = await fetch(url, init);
  const headers = Object.fromEntries([...res.headers].filter(([k]) => k !== 'date'));
  return { status: res.status, headers, body: await res.text() };
}

describe('ApiExpressAdapter', () => {
  const cases: [string, unknown, number | undefined, RequestInit][] = [
    ['a POST answered 200', { id: 'v', n: 1, nested: { a: [1, 'é'] } }, 200, { method: 'POST' }],
    ['a DELETE answered 202', [{ id: 'v' }], 202, { method: 'DELETE' }],
    ['a POST answered 204', { id: 'v' }, 204, { method: 'POST' }],
    ['a GET', { id: 'v' }, undefined, { method: 'GET' }],
    ['a HEAD', { id: 'v' }, undefined, { method: 'HEAD' }],
    ['an error object', new Error('boom'), 500, { method: 'POST' }],
  ];

  it.each(cases)(
    'answers %s exactly as Nest and Express do',
    async (_label, body, status, init) => {
      const [ours, theirs] = await Promise.all([
        serve(new ApiExpressAdapter(), body, status),
        serve(new ExpressAdapter(), body, status),
      ]);
      try {
        expect(await answer(ours.url, init)).toEqual(await answer(theirs.url, init));
      } finally {
        await Promise.all([ours.close(), theirs.close()]);
      }
    },
  );
});

describe('corsMiddleware', () => {
  const options = {
    origin: ['https://app.example'],
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['Retry-After', 'X-Request-Id'],
    maxAge: 600,
  };

  /** The same app with Nest's own CORS, and with ours. */
  async function both() {
    const make = async (withOurs: boolean) => {
      const adapter = withOurs ? new ApiExpressAdapter() : new ExpressAdapter();
      adapter.enableCors(options);
      const app = adapter.getInstance<express.Express>();
      app.post('/x', (_req: Request, res: Response) => void res.json({ ok: true }));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`,
        close: () => new Promise((r) => server.close(r)),
      };
    };
    return Promise.all([make(true), make(false)]);
  }

  it('answers with and without an Origin, and preflights, exactly as cors does', async () => {
    const [ours, theirs] = await both();
    try {
      for (const init of [
        { method: 'POST' },
        { method: 'POST', headers: { origin: 'https://app.example' } },
        { method: 'POST', headers: { origin: 'https://evil.example' } },
        {
          method: 'OPTIONS',
          headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
        },
      ]) {
        expect(await answer(ours.url, init)).toEqual(await answer(theirs.url, init));
      }
    } finally {
      await Promise.all([ours.close(), theirs.close()]);
    }
  });
});
