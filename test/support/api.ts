import type { components } from '../generated/openapi';
import { makeToken } from './token';
import { makeWav } from './wav';

/** A voice as the API answers it: the schema of the committed OpenAPI document. */
export type VoiceJson = components['schemas']['Voice'];

/** A tiny client of the service's HTTP API, as an app backend would use it. */
export class ApiClient {
  readonly token: string;

  constructor(
    readonly baseUrl: string,
    readonly userId: string,
    scope = 'voices:read voices:write',
  ) {
    this.token = makeToken(userId, scope);
  }

  async request(
    method: string,
    path: string,
    body?: FormData | string,
    headers: Record<string, string> = {},
  ) {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      body,
      headers: { authorization: `Bearer ${this.token}`, ...headers },
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, headers: res.headers, body: json };
  }

  async upload(
    opts: {
      name?: string;
      provider?: string;
      seconds?: number;
      file?: Buffer;
      filename?: string;
      language?: string;
    } = {},
  ) {
    const form = new FormData();
    form.set('name', opts.name ?? 'Grandma');
    form.set('provider', opts.provider ?? 'elevenlabs');
    if (opts.language) form.set('language', opts.language);
    const file = opts.file ?? makeWav(opts.seconds ?? 3);
    form.set(
      'file',
      new Blob([new Uint8Array(file)], { type: 'audio/wav' }),
      opts.filename ?? 'grandma.wav',
    );
    return this.request('POST', '/v1/voices', form);
  }

  async get(id: string): Promise<VoiceJson> {
    const res = await this.request('GET', `/v1/voices/${id}`);
    if (res.status !== 200) throw new Error(`GET ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as VoiceJson;
  }

  /** Polls until the voice reaches one of `statuses`. */
  async waitFor(id: string, statuses: string[], timeoutMs = 20_000): Promise<VoiceJson> {
    const deadline = Date.now() + timeoutMs;
    let last: VoiceJson | null = null;
    while (Date.now() < deadline) {
      last = await this.get(id);
      if (statuses.includes(last.status)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `voice ${id} did not reach ${statuses.join('/')}; last: ${JSON.stringify(last)}`,
    );
  }
}
