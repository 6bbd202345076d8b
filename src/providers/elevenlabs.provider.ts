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
  KEY_LABEL,
  keyFromMetadata,
  numberOrNull,
  stringOrNull,
} from './voice-metadata';
import {
  type AccountLimits,
  type CreateVoiceRequest,
  type RemoteVoice,
  type RemoteVoicePage,
  VoiceProvider,
} from './voice-provider.port';

export interface ElevenLabsProviderOptions {
  /** e.g. https://api.elevenlabs.io, or a regional host, or the sandbox's /elevenlabs base. */
  baseUrl: string;
  apiKey?: string;
  /** Budget of each HTTP request, answer body included. Default 30 s. */
  timeoutMs?: number;
  /** Page size of /v2/voices (1..100, default 100). Smaller only to exercise paging in tests. */
  pageSize?: number;
}

/** Codes meaning "no such voice"; the status that carries them varies (400 or 404). */
const NOT_FOUND_CODES = new Set(['voice_not_found', 'voice_does_not_exist']);
/** The add/edit budget of the billing cycle is spent; seen with 403, classified whatever the status. */
const BUDGET_CODE = 'voice_add_edit_limit_reached';
/** Older or reworded answers that only say it in the message. */
const BUDGET_MESSAGE =
  /(add\s*\/\s*edit|add_edit|voice add.{0,12}edit).{0,40}limit|limit.{0,40}(add\s*\/\s*edit|add_edit)/i;
/** Throttling codes, transient whatever status they come with. */
const RETRYABLE_CODES = new Set(['too_many_concurrent_requests', 'system_busy']);

/**
 * Reads both error envelopes, `{"detail":{"status","message"}}` and the newer
 * `{"detail":{"type","code","request_id"}}`, and FastAPI's 422 `{"detail":[{loc,msg,type}]}`.
 */
export function classifyElevenLabsError(status: number, body: string): ErrorClassification {
  const detail = asRecord(tryParseJson(body))?.detail;
  const d = asRecord(detail);
  let code: string | null = null;
  let message: string;
  if (Array.isArray(detail)) {
    code = 'validation_error';
    message = detail
      .map((d) => {
        const r = asRecord(d);
        const loc = Array.isArray(r?.loc) ? r.loc.join('.') : '?';
        return `${loc}: ${stringOrNull(r?.msg) ?? 'invalid'}`;
      })
      .join('; ');
  } else if (d) {
    code = stringOrNull(d.status) ?? stringOrNull(d.code) ?? stringOrNull(d.type);
    message = stringOrNull(d.message) ?? '';
    const requestId = stringOrNull(d.request_id);
    if (requestId) message += ` (request_id ${requestId})`;
  } else if (typeof detail === 'string') {
    message = detail;
  } else {
    message = body.slice(0, 200);
  }
  code ??= `http_${status}`;
  if (NOT_FOUND_CODES.has(code)) return { errorClass: 'not_found', code, message };
  if (code === 'voice_limit_reached') return { errorClass: 'capacity', code, message };
  if (code === BUDGET_CODE || BUDGET_MESSAGE.test(message)) {
    return { errorClass: 'budget', code: BUDGET_CODE, message };
  }
  if (RETRYABLE_CODES.has(code) || isTransientStatus(status)) {
    return { errorClass: 'retryable', code, message };
  }
  // Everything else (invalid_api_key, 422, quota_exceeded which is about credits - seen with 401,
  // yet not a bad key, and not about the voice library or the clone budget - and a 404 without a
  // voice code, likely a wrong base URL) cannot heal by itself. The code tells them apart.
  return { errorClass: 'fatal', code, message };
}

/**
 * ElevenLabs instant voice cloning, as described in PROVIDERS.md. Each method makes HTTP requests
 * and nothing else: no retries, no caching. The idempotency key is written both in the labels
 * (`vs_key`) and in the description (`vs_key:<key>`), which `/v2/voices?search=` looks into.
 */
export class ElevenLabsProvider extends VoiceProvider {
  readonly name = 'elevenlabs' as const;
  private readonly http: ProviderHttpClient;
  private readonly pageSize: number;

  constructor(opts: ElevenLabsProviderOptions) {
    super();
    this.pageSize = Math.min(100, Math.max(1, Math.trunc(opts.pageSize ?? 100)));
    this.http = new ProviderHttpClient({
      provider: 'elevenlabs',
      baseUrl: opts.baseUrl,
      headers: opts.apiKey === undefined ? {} : { 'xi-api-key': opts.apiKey },
      timeoutMs: opts.timeoutMs,
      classify: classifyElevenLabsError,
      secrets: [opts.apiKey],
    });
  }

  /** `POST /v1/voices/add`, one `files` part streamed from the sample. Exactly one request. */
  async createVoice(request: CreateVoiceRequest): Promise<{ remoteVoiceId: string }> {
    const stream = await openSample(request.sample, 'elevenlabs');
    const body = multipartBody([
      { name: 'name', value: request.name },
      {
        name: 'files',
        filename: request.sample.filename,
        contentType: request.sample.contentType,
        stream,
        sizeBytes: request.sample.sizeBytes,
      },
      { name: 'description', value: describeKey(request.idempotencyKey) },
      { name: 'labels', value: JSON.stringify({ [KEY_LABEL]: request.idempotencyKey }) },
    ]);
    const { json } = await this.http.request('POST', '/v1/voices/add', { multipart: body });
    const voiceId = stringOrNull(asRecord(json)?.voice_id);
    if (!voiceId) {
      // The voice may exist: retryable, so the caller's lookup by key finds it.
      throw new ProviderError(
        'elevenlabs',
        'retryable',
        'invalid_response',
        'elevenlabs POST /v1/voices/add answered without a voice_id',
      );
    }
    return { remoteVoiceId: voiceId };
  }

  /** `DELETE /v1/voices/{id}`; voice_not_found (400 or 404) means already gone. */
  async deleteVoice(remoteVoiceId: string): Promise<void> {
    await unlessNotFound(
      this.http.request('DELETE', `/v1/voices/${encodeURIComponent(remoteVoiceId)}`),
      undefined,
    );
  }

  async getVoice(remoteVoiceId: string): Promise<RemoteVoice | null> {
    const answer = await unlessNotFound(
      this.http.request('GET', `/v1/voices/${encodeURIComponent(remoteVoiceId)}`),
      null,
    );
    return answer ? toRemoteVoice(answer.json) : null;
  }

  /** `GET /v2/voices?category=cloned`: premade voices take no slot, so they are left out. */
  listVoices(cursor?: string | null): Promise<RemoteVoicePage> {
    return this.page(cursor ?? null);
  }

  /** Searches by the key (it is in the description), then checks the exact key on each hit. */
  findByIdempotencyKey(idempotencyKey: string): Promise<RemoteVoice | null> {
    return findInPages(
      (cursor) => this.page(cursor, idempotencyKey),
      (v) => v.idempotencyKey === idempotencyKey,
    );
  }

  /**
   * `GET /v1/user/subscription`: the limits follow the plan, so they are read, never hard-coded:
   * the slot limit, and the add/edit budget of the billing cycle (`voice_add_edit_counter` of
   * `max_voice_add_edits`, null meaning no budget, resetting at `next_character_count_reset_unix`).
   */
  async getAccountLimits(): Promise<AccountLimits> {
    const { json } = await this.http.request('GET', '/v1/user/subscription');
    const r = asRecord(json);
    const used = numberOrNull(r?.voice_add_edit_counter);
    const reset = numberOrNull(r?.next_character_count_reset_unix);
    return {
      voiceLimit: numberOrNull(r?.voice_limit),
      voiceSlotsUsed: numberOrNull(r?.voice_slots_used),
      cloneBudget:
        used === null
          ? null
          : {
              used,
              limit: numberOrNull(r?.max_voice_add_edits),
              resetsAt: reset === null ? null : new Date(reset * 1000),
            },
    };
  }

  private async page(cursor: string | null, search?: string): Promise<RemoteVoicePage> {
    const { json } = await this.http.request('GET', '/v2/voices', {
      query: {
        page_size: this.pageSize,
        category: 'cloned',
        search,
        next_page_token: cursor,
      },
    });
    const r = asRecord(json);
    const voices = (Array.isArray(r?.voices) ? r.voices : [])
      .map(toRemoteVoice)
      .filter((v): v is RemoteVoice => v !== null);
    const token = stringOrNull(r?.next_page_token);
    return { voices, nextCursor: r?.has_more === true && token ? token : null };
  }
}

function toRemoteVoice(json: unknown): RemoteVoice | null {
  const v = asRecord(json);
  const id = stringOrNull(v?.voice_id);
  if (!v || !id) return null;
  const created = numberOrNull(v.created_at_unix);
  return {
    remoteVoiceId: id,
    name: stringOrNull(v.name) ?? '',
    idempotencyKey: keyFromMetadata(v.labels, v.description),
    countsTowardLimit: v.category !== 'premade',
    createdAt: created === null ? null : new Date(created * 1000),
  };
}
