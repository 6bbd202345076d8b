import type { IncomingMessage, ServerResponse } from 'node:http';
import busboy from 'busboy';
import { SandboxError } from './control-schemas';

/** Request plumbing shared by the provider dialects and the control routes. */

export interface Upload {
  fields: Map<string, string>;
  files: Array<{ field: string; filename: string; mimeType: string; size: number }>;
}

/** Answer and end; the handlers return this so every path ends in exactly one answer. */
export type Answer =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string; headers?: Record<string, string> }
  | { status: 204 };

const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

/** Reads the whole multipart body, counting the bytes of each file part (never kept). */
export function readUpload(req: IncomingMessage): Promise<Upload> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: MAX_UPLOAD_BYTES } });
    } catch (err) {
      req.resume();
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const upload: Upload = { fields: new Map(), files: [] };
    bb.on('field', (name, value) => upload.fields.set(name, value));
    bb.on('file', (field, stream, info) => {
      const file = { field, filename: info.filename ?? 'upload', mimeType: info.mimeType, size: 0 };
      upload.files.push(file);
      stream.on('data', (chunk: Buffer) => (file.size += chunk.length));
    });
    bb.on('close', () => resolve(upload));
    bb.on('error', (err) => {
      req.unpipe(bb);
      req.resume();
      reject(err instanceof Error ? err : new Error(String(err)));
    });
    req.pipe(bb);
  });
}

export function drain(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    if (req.readableEnded) return resolve();
    req.on('end', resolve);
    req.on('error', () => resolve());
    req.resume();
  });
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString().trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SandboxError(400, 'body is not JSON');
  }
}

export function send(res: ServerResponse, answer: Answer): void {
  if (res.headersSent || res.destroyed) return;
  const headers = 'headers' in answer ? (answer.headers ?? {}) : {};
  if ('json' in answer) {
    res.writeHead(answer.status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(answer.json));
  } else if ('text' in answer) {
    res.writeHead(answer.status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
    res.end(answer.text);
  } else {
    res.writeHead(answer.status);
    res.end();
  }
}
