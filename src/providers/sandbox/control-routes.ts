import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProviderName } from '../../config/app-config';
import { drain, readJson, send } from './sandbox-http';
import type { Sandbox } from './sandbox-state';

/** /_sandbox/*: what tests use to configure the sandbox and read back what happened. */

export async function handleControl(
  sb: Sandbox,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const method = req.method ?? 'GET';
  if (method === 'PUT' && path === '/config') {
    return send(res, { status: 200, json: sb.setConfig(await readJson(req)) });
  }
  if (method === 'GET' && path === '/config') return send(res, { status: 200, json: sb.config() });
  if (method === 'POST' && path === '/reset') {
    await drain(req);
    sb.reset();
    return send(res, { status: 200, json: { ok: true } });
  }
  if (method === 'GET' && path === '/state') return send(res, { status: 200, json: sb.state() });
  if (method === 'POST' && path === '/reconciliation-mark') {
    await drain(req);
    sb.markReconciliation();
    return send(res, { status: 200, json: { ok: true } });
  }
  const m = /^\/(elevenlabs|cartesia)\/(foreign|voices\/([^/]+))$/.exec(path);
  if (m) {
    const provider = m[1] as ProviderName;
    if (method === 'POST' && m[2] === 'foreign') {
      return send(res, { status: 201, json: sb.addForeignVoice(provider, await readJson(req)) });
    }
    if (method === 'DELETE' && m[3]) {
      await drain(req);
      const removed = sb.removeVoice(provider, decodeURIComponent(m[3]));
      return send(
        res,
        removed ? { status: 204 } : { status: 404, json: { error: 'no such voice' } },
      );
    }
  }
  await drain(req);
  send(res, { status: 404, json: { error: 'unknown sandbox control route' } });
}
