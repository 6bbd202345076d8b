import busboy from 'busboy';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { SampleUpload } from '../voice-provider.port';

/** What a stub saw of one request. */
export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. /v2/voices?page_size=100 */
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type StubReply =
  | { status: number; json?: unknown; text?: string; headers?: Record<string, string> }
  /** Never answer (until the stub closes). */
  | 'hang'
  /** Drop the connection without an answer. */
  | 'destroy';

export interface StubServer {
  url: string;
  requests: RecordedRequest[];
  /** Replies in order; the last one repeats. */
  reply(...replies: Array<StubReply | ((req: RecordedRequest) => StubReply)>): void;
  close(): Promise<void>;
}

/** A scripted HTTP server for adapter tests: records every request and answers as told. */
export async function startStubServer(): Promise<StubServer> {
  const requests: RecordedRequest[] = [];
  let script: Array<StubReply | ((req: RecordedRequest) => StubReply)> = [
    { status: 200, json: {} },
  ];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stub');
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(recorded);
      const step = script.length > 1 ? script.shift()! : script[0];
      const reply = typeof step === 'function' ? step(recorded) : step;
      if (reply === 'hang') return;
      if (reply === 'destroy') {
        req.socket.destroy();
        return;
      }
      const headers = { ...reply.headers };
      let body = '';
      if (reply.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(reply.json);
      } else if (reply.text !== undefined) {
        headers['content-type'] = 'text/plain';
        body = reply.text;
      }
      res.writeHead(reply.status, headers);
      res.end(body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    reply: (...replies) => {
      script = replies;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

export interface ParsedPart {
  name: string;
  value?: string;
  filename?: string;
  mimeType?: string;
  data?: Buffer;
}

/** Parses a recorded multipart body, in part order. */
export function parseMultipart(req: RecordedRequest): Promise<ParsedPart[]> {
  return new Promise((resolve, reject) => {
    const parts: ParsedPart[] = [];
    const bb = busboy({ headers: req.headers });
    bb.on('field', (name, value) => parts.push({ name, value }));
    bb.on('file', (name, stream, info) => {
      const part: ParsedPart = { name, filename: info.filename, mimeType: info.mimeType };
      parts.push(part);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => (part.data = Buffer.concat(chunks)));
    });
    bb.on('close', () => resolve(parts));
    bb.on('error', reject);
    bb.end(req.body);
  });
}

/** A sample served from memory in small chunks, counting how often it was opened. */
export function memorySample(
  data: Buffer,
  opts: { filename?: string; contentType?: string; failAfterBytes?: number } = {},
): SampleUpload & { opened: number } {
  const sample = {
    opened: 0,
    filename: opts.filename ?? 'sample.wav',
    contentType: opts.contentType ?? 'audio/wav',
    sizeBytes: data.length,
    open(): Promise<Readable> {
      sample.opened++;
      const chunkSize = 16 * 1024;
      async function* chunks(): AsyncGenerator<Buffer> {
        for (let i = 0; i < data.length; i += chunkSize) {
          if (opts.failAfterBytes !== undefined && i >= opts.failAfterBytes) {
            throw new Error('disk went away');
          }
          yield data.subarray(i, i + chunkSize);
          await new Promise((r) => setImmediate(r));
        }
      }
      return Promise.resolve(Readable.from(chunks()));
    },
  };
  return sample;
}
