import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';

/** One part of a hand-built multipart body; `raw` replaces the generated part headers entirely. */
export interface Part {
  name: string;
  value: string | Buffer;
  filename?: string;
  contentType?: string;
  raw?: string;
}

export const BOUNDARY = 'x-voice-slots-test-boundary';

/**
 * A multipart/form-data body built byte by byte, so tests can send what no well-behaved client
 * would: wrong boundaries, missing terminators, odd headers, duplicate parts.
 */
export function multipart(
  parts: Part[],
  opts: { boundary?: string; terminate?: boolean } = {},
): { body: Buffer; contentType: string } {
  const boundary = opts.boundary ?? BOUNDARY;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const head =
      p.raw ??
      `Content-Disposition: form-data; name="${p.name}"` +
        (p.filename !== undefined ? `; filename="${p.filename}"` : '') +
        (p.contentType ? `\r\nContent-Type: ${p.contentType}` : '');
    chunks.push(Buffer.from(`--${boundary}\r\n${head}\r\n\r\n`));
    chunks.push(Buffer.isBuffer(p.value) ? p.value : Buffer.from(p.value));
    chunks.push(Buffer.from('\r\n'));
  }
  if (opts.terminate !== false) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** The usual upload form: name, provider, optional language, and the file. */
export function uploadForm(
  file: Buffer,
  fields: Record<string, string> = {},
  filename = 'voice.wav',
  contentType = 'audio/wav',
): Part[] {
  return [
    { name: 'name', value: fields.name ?? 'Grandma' },
    { name: 'provider', value: fields.provider ?? 'elevenlabs' },
    ...(fields.language ? [{ name: 'language', value: fields.language }] : []),
    { name: 'file', value: file, filename, contentType },
  ];
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** An HTTP request with an exact body and headers (fetch would fix up what tests want broken). */
export function send(
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    /** A fresh connection, closed after the answer (for requests that leave it unusable). */
    close?: boolean;
  },
): Promise<RawAnswer> {
  const headers = { ...opts.headers };
  // Explicit framing: Node sends a GET or DELETE body unframed otherwise.
  const framed = Object.keys(headers).some((k) => k.toLowerCase() === 'content-length');
  if (opts.body !== undefined && !framed)
    headers['content-length'] = String(Buffer.byteLength(opts.body));
  if (opts.close) headers.connection = 'close';
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: opts.method ?? 'POST', headers, agent: opts.close ? false : undefined },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: any;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Sends the start of a request over a raw socket and hangs up before the body is complete, as a
 * client that crashes or loses its connection mid-upload would.
 */
export function sendAndHangUp(
  url: string,
  head: Record<string, string>,
  partialBody: Buffer,
  path = '/v1/voices',
): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      const lines = [`POST ${path} HTTP/1.1`, `Host: ${hostname}:${port}`];
      for (const [k, v] of Object.entries(head)) lines.push(`${k}: ${v}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      socket.write(partialBody, () => {
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 50);
      });
    });
    socket.on('error', reject);
  });
}
