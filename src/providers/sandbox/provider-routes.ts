import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProviderName } from '../../config/app-config';
import { cartesia } from './cartesia.dialect';
import type { Dialect } from './dialect';
import { elevenLabs } from './elevenlabs.dialect';
import { drain, readUpload, send, type Upload } from './sandbox-http';
import type { Sandbox } from './sandbox-state';

/**
 * A provider request: routed by its dialect, its body read whole, then delayed, faulted or
 * answered as the sandbox's config says.
 */

const DEFAULT_HOLD_MS = 60_000;

const DIALECTS: Record<ProviderName, Dialect> = { elevenlabs: elevenLabs, cartesia };

export async function handleProvider(
  sb: Sandbox,
  provider: ProviderName,
  path: string,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const dialect = DIALECTS[provider];
  const route = dialect.route(req.method ?? 'GET', path);
  if (!route) {
    await drain(req);
    send(
      res,
      provider === 'elevenlabs'
        ? { status: 404, json: { detail: 'Not Found' } }
        : { status: 404, text: 'Not Found' },
    );
    return;
  }
  const store = sb.store(provider);
  store.stats.requests[route.op]++;
  if (route.op === 'create') store.stats.createAttempts++;
  // The whole body is read before any answer, so that a client streaming its upload never sees
  // its connection cut mid-body, and so every create really receives the file.
  let upload: Upload | null = null;
  let badUpload = false;
  if (route.op === 'create') {
    try {
      upload = await readUpload(req);
      store.stats.bytesReceived += upload.files.reduce((n, f) => n + f.size, 0);
    } catch {
      badUpload = true;
    }
  } else {
    await drain(req);
  }
  const denied = dialect.authorized(req);
  if (denied) return send(res, denied);
  if (badUpload) {
    return send(
      res,
      provider === 'elevenlabs'
        ? {
            status: 422,
            json: {
              detail: [{ loc: ['body'], msg: 'Invalid multipart body', type: 'value_error' }],
            },
          }
        : dialect.error(400, 'invalid_request', 'Invalid multipart body'),
    );
  }
  const signal = sb.closeSignal;
  if (sb.latencyMs() > 0) await sleep(sb.latencyMs(), undefined, { signal });
  const fault = sb.rollFault(provider, route.op);
  switch (fault.kind) {
    case 'timeout': {
      // Released early when the client gives up, so abandoned holds do not pile up timers.
      const clientGone = new AbortController();
      res.once('close', () => clientGone.abort());
      await sleep(fault.rates.timeoutMs ?? DEFAULT_HOLD_MS, undefined, {
        signal: AbortSignal.any([signal, clientGone.signal]),
      }).catch(() => undefined);
      res.socket?.destroy();
      return;
    }
    case 'rateLimit': {
      const headers: Record<string, string> =
        fault.rates.retryAfterSeconds === undefined
          ? {}
          : { 'retry-after': String(fault.rates.retryAfterSeconds) };
      return send(
        res,
        dialect.error(429, dialect.throttleCode, 'Too many concurrent requests', headers),
      );
    }
    case 'error5xx':
      return send(
        res,
        dialect.error(500, 'internal_server_error', 'Sandbox-injected server error'),
      );
    case 'lostAnswer':
      dialect.handle(sb, route.op, route.id, url, upload);
      res.socket?.destroy();
      return;
    case null:
      return send(res, dialect.handle(sb, route.op, route.id, url, upload));
  }
}
