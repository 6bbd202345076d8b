import { ProviderError, unlessNotFound } from './provider-error';
import {
  type ErrorClassification,
  isTransientStatus,
  multipartBody,
  openSample,
  ProviderHttpClient,
  tryParseJson,
} from './http';
import {
  asRecord,
  describeKey,
  findInPages,
  keyFromDescription,
  stringOrNull,
} from './voice-metadata';
import {
  type AccountLimits,
  type CreateVoiceRequest,
  type RemoteVoice,
  type RemoteVoicePage,
  VoiceProvider,
} from './voice-provider.port';

export interface CartesiaProviderOptions {
  /** e.g. https://api.cartesia.ai, or the sandbox's /cartesia base. */
  baseUrl: string;
  apiKey?: string;
  /** Sent as Cartesia-Version on every request, e.g. 2025-11-04. */
  version: string;
  /** Budget of each HTTP request, answer body included. Default 30 s. */
  timeoutMs?: number;
  /** `limit` of GET /voices (1..100, default 100). Smaller only to exercise paging in tests. */
  pageSize?: number;
}

/**
 * Reads `{"error_code","title","message","request_id"}` (API versions from 2026-03-01) or the
 * plain text of older versions. Cartesia has no "voice not found" code of its own: 404 is enough.
 */
export function classifyCartesiaError(status: number, body: string): ErrorClassification {
  const r = asRecord(tryParseJson(body));
  const errorCode = stringOrNull(r?.error_code);
  const message = r
    ? [stringOrNull(r.title), stringOrNull(r.message), stringOrNull(r.request_id)]
        .filter(Boolean)
        .join(' - ')
    : body.trim().slice(0, 200);
  const code =
    errorCode ??
    (status === 404 ? 'not_found' : status === 429 ? 'rate_limited' : `http_${status}`);
  if (status === 404) return { errorClass: 'not_found', code, message };
  // Cartesia documents no cap on cloned voices; the sandbox (and any future cap) says so with
  // this code, and it must requeue rather than fail the request.
  if (code === 'voice_limit_reached') return { errorClass: 'capacity', code, message };
  // 409 is what Cartesia's own SDK retries too (a lock that timed out).
  if (isTransientStatus(status) || status === 409)
    return { errorClass: 'retryable', code, message };
  return { errorClass: 'fatal', code, message };
}

/**
 * Cartesia voice cloning, as described in PROVIDERS.md. No retries, no caching. The idempotency
 * key is written in the description (`vs_key:<key>`): Cartesia voices carry no labels.
 */
export class CartesiaProvider extends VoiceProvider {
  readonly name = 'cartesia' as const;
  private readonly http: ProviderHttpClient;
  private readonly pageSize: number;

  constructor(opts: CartesiaProviderOptions) {
    super();
    this.pageSize = Math.min(100, Math.max(1, Math.trunc(opts.pageSize ?? 100)));
    const headers: Record<string, string> = { 'cartesia-version': opts.version };
    if (opts.apiKey !== undefined) headers.authorization = `Bearer ${opts.apiKey}`;
    this.http = new ProviderHttpClient({
      provider: 'cartesia',
      baseUrl: opts.baseUrl,
      headers,
      timeoutMs: opts.timeoutMs,
      classify: classifyCartesiaError,
      secrets: [opts.apiKey],
    });
  }

  /** `POST /voices/clone` with the `clip` part streamed from the sample. Exactly one request. */
  async createVoice(request: CreateVoiceRequest): Promise<{ remoteVoiceId: string }> {
    const stream = await openSample(request.sample, 'cartesia');
    const body = multipartBody([
      {
        name: 'clip',
        filename: request.sample.filename,
        contentType: request.sample.contentType,
        stream,
        sizeBytes: request.sample.sizeBytes,
      },
      { name: 'name', value: request.name },
      { name: 'description', value: describeKey(request.idempotencyKey) },
      { name: 'language', value: request.language ?? 'en' },
    ]);
    const { json } = await this.http.request('POST', '/voices/clone', { multipart: body });
    const id = stringOrNull(asRecord(json)?.id);
    if (!id) {
      throw new ProviderError(
        'cartesia',
        'retryable',
        'invalid_response',
        'cartesia POST /voices/clone answered without an id',
      );
    }
    return { remoteVoiceId: id };
  }

  /** `DELETE /voices/{id}` (204); 404 means already gone. */
  async deleteVoice(remoteVoiceId: string): Promise<void> {
    await unlessNotFound(
      this.http.request('DELETE', `/voices/${encodeURIComponent(remoteVoiceId)}`),
      undefined,
    );
  }

  async getVoice(remoteVoiceId: string): Promise<RemoteVoice | null> {
    const answer = await unlessNotFound(
      this.http.request('GET', `/voices/${encodeURIComponent(remoteVoiceId)}`),
      null,
    );
    return answer ? toRemoteVoice(answer.json) : null;
  }

  /** `GET /voices?is_owner=true`: the public catalogue takes no slot. */
  async listVoices(cursor?: string | null): Promise<RemoteVoicePage> {
    const { json } = await this.http.request('GET', '/voices', {
      query: { limit: this.pageSize, is_owner: true, starting_after: cursor ?? undefined },
    });
    const r = asRecord(json);
    const voices = (Array.isArray(r?.data) ? r.data : [])
      .map(toRemoteVoice)
      .filter((v): v is RemoteVoice => v !== null);
    // next_page is the id to pass as starting_after; the last id does as well if it is missing.
    const next = stringOrNull(r?.next_page) ?? voices.at(-1)?.remoteVoiceId ?? null;
    return { voices, nextCursor: r?.has_more === true ? next : null };
  }

  /** Cartesia has no search: pages through the owned voices, matching the description key. */
  findByIdempotencyKey(idempotencyKey: string): Promise<RemoteVoice | null> {
    return findInPages(
      (cursor) => this.listVoices(cursor),
      (v) => v.idempotencyKey === idempotencyKey,
    );
  }

  /** Cartesia exposes no cap on cloned voices: the slot limit comes from configuration. */
  getAccountLimits(): Promise<AccountLimits> {
    return Promise.resolve({ voiceLimit: null, voiceSlotsUsed: null, cloneBudget: null });
  }
}

function toRemoteVoice(json: unknown): RemoteVoice | null {
  const v = asRecord(json);
  const id = stringOrNull(v?.id);
  if (!v || !id) return null;
  const created = stringOrNull(v.created_at);
  const createdAt = created ? new Date(created) : null;
  return {
    remoteVoiceId: id,
    name: stringOrNull(v.name) ?? '',
    idempotencyKey: keyFromDescription(v.description),
    // Owned voices take a slot; a public catalogue voice read by id does not.
    countsTowardLimit: typeof v.is_owner === 'boolean' ? v.is_owner : v.is_public !== true,
    createdAt: createdAt && !Number.isNaN(createdAt.getTime()) ? createdAt : null,
  };
}
