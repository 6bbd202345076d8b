import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { Agent, request } from 'undici';
import { guardedLookup } from './webhook-url';

/** A receiver that does not answer within this is retried (CONTRACT.md). */
const TIMEOUT_MS = 15_000;
/** Answers are read only this far: nothing in them matters beyond the status. */
const ANSWER_CAP_BYTES = 16 * 1024;

const SECRET_PREFIX = 'whsec_';

/**
 * The Standard Webhooks signature of one delivery, byte for byte what the standardwebhooks
 * library's Webhook.sign answers ("v1," + base64 HMAC-SHA256 over "id.timestamp.body" with the
 * base64-decoded secret), computed with node's native HMAC over a key built once per secret: the
 * library decodes the secret and hashes in JavaScript on every call, which was most of a
 * delivery's own CPU in the worker. webhook-sender.spec.ts holds it to the library.
 */
export class WebhookSigner {
  private readonly keys = new Map<string, KeyObject>();

  sign(secret: string, id: string, at: Date, body: string): string {
    let key = this.keys.get(secret);
    if (!key) {
      const raw = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
      const bytes = Buffer.from(raw, 'base64');
      if (bytes.length === 0) throw new Error('webhook secret is empty');
      key = createSecretKey(bytes);
      // Endpoints' secrets, a handful: the map stays small, and a deleted endpoint's key with it.
      this.keys.set(secret, key);
    }
    const digest = createHmac('sha256', key)
      .update(`${id}.${Math.floor(at.getTime() / 1000)}.${body}`)
      .digest('base64');
    return `v1,${digest}`;
  }
}

export interface SendResult {
  status: number | null;
  error: string | null;
  durationMs: number;
}

/**
 * Signs and sends one delivery as Standard Webhooks asks (webhook-id, webhook-timestamp,
 * webhook-signature over "id.timestamp.body", signed with the standardwebhooks library). Redirects
 * are never followed (undici's request does not), every connection's address is checked again
 * (guardedLookup), the answer is read only up to a small cap, and the whole exchange has one
 * deadline, so a hostile or dead receiver costs a bounded slot of one worker.
 */
export class WebhookSender {
  private readonly agent: Agent;
  private readonly signer = new WebhookSigner();

  constructor(allowPrivate: boolean) {
    this.agent = new Agent({
      connect: { lookup: guardedLookup(allowPrivate), timeout: TIMEOUT_MS },
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
      // Each delivery is its own short exchange; idle sockets to receivers are not kept long.
      keepAliveTimeout: 4_000,
    });
  }

  async send(url: string, secret: string, id: string, body: string, at: Date): Promise<SendResult> {
    const started = performance.now();
    const signature = this.signer.sign(secret, id, at, body);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        signal: controller.signal,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'voice-slots-webhooks/1',
          'webhook-id': id,
          'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body,
      });
      let read = 0;
      for await (const chunk of res.body) {
        read += (chunk as Buffer).length;
        if (read >= ANSWER_CAP_BYTES) {
          res.body.destroy();
          break;
        }
      }
      return { status: res.statusCode, error: null, durationMs: performance.now() - started };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const error = controller.signal.aborted ? 'timeout' : (e.code ?? e.name ?? 'error');
      return { status: null, error, durationMs: performance.now() - started };
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
