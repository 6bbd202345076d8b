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
