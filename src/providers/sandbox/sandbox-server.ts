import busboy from 'busboy';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { ProviderName } from '../../config/app-config';
import { keyFromMetadata } from '../voice-metadata';
import { seededRandom } from '../../common/seeded-random';

/**
 * An in-memory stand-in for the ElevenLabs and Cartesia APIs, answering exactly what PROVIDERS.md
 * describes, so the real adapters run against it unchanged. ElevenLabs lives under /elevenlabs,
 * Cartesia under /cartesia, and /_sandbox/* lets tests (in this process or another) set limits,
 * latency and faults and read back what happened.
 */

export const SANDBOX_PROVIDERS = ['elevenlabs', 'cartesia'] as const satisfies ProviderName[];
export const SANDBOX_OPERATIONS = ['create', 'delete', 'get', 'list', 'account'] as const;
export type SandboxOperation = (typeof SANDBOX_OPERATIONS)[number];

const rate = z.number().min(0).max(1);
const faultRatesSchema = z.strictObject({
  /** Answer 500. */
  error5xx: rate.optional(),
  /** Answer 429 with the provider's throttling code. */
  rateLimit: rate.optional(),
  /** Retry-After (seconds) sent with the 429s; none when absent. */
  retryAfterSeconds: z.number().int().min(0).optional(),
  /** Hold the request unanswered, then drop the connection. */
  timeout: rate.optional(),
  /** How long a timeout holds, default 60 s (or until close). */
  timeoutMs: z.number().int().min(0).optional(),
  /** Do the work (a create creates the voice), then destroy the socket without an answer. */
  lostAnswer: rate.optional(),
});
export type FaultRates = z.infer<typeof faultRatesSchema>;

const providerFaultsSchema = z.strictObject({
  create: faultRatesSchema.optional(),
  delete: faultRatesSchema.optional(),
  get: faultRatesSchema.optional(),
  list: faultRatesSchema.optional(),
  account: faultRatesSchema.optional(),
  /** Applies to every operation; an operation's own entry wins field by field. */
  any: faultRatesSchema.optional(),
});
export type ProviderFaults = z.infer<typeof providerFaultsSchema>;

const limit = z.number().int().min(0);
/** ElevenLabs' add/edit budget: every clone spends one, a delete gives nothing back. */
const cloneBudgetPatchSchema = z.strictObject({
  /** max_voice_add_edits; null publishes no budget. */
  limit: limit.nullable().optional(),
  /** Sets voice_add_edit_counter, e.g. to make it jump as if someone else spent it. */
  used: limit.optional(),
  /** Moves the next reset (and the counter's zeroing) to this many seconds from now. */
  resetInSeconds: z.number().positive().optional(),
  /** Length of a billing cycle; each reset schedules the next one this far ahead. */
  periodSeconds: z.number().positive().optional(),
});
export type CloneBudgetPatch = z.infer<typeof cloneBudgetPatchSchema>;
export const sandboxConfigPatchSchema = z.strictObject({
  latencyMs: z.number().int().min(0).optional(),
  voiceLimit: z
    .strictObject({ elevenlabs: limit.optional(), cartesia: limit.optional() })
    .optional(),
  cloneBudget: z.strictObject({ elevenlabs: cloneBudgetPatchSchema.optional() }).optional(),
  /** Replaces the faults of each provider named; `{}` clears them. */
  faults: z
    .strictObject({
      elevenlabs: providerFaultsSchema.optional(),
      cartesia: providerFaultsSchema.optional(),
    })
    .optional(),
  /** Reseeds the fault dice, for a reproducible run. */
  seed: z.number().int().optional(),
  /**
   * The limit the service is configured with, when the account's own limit is set higher so
   * that an over-claim is accepted here and recorded (maxOverServiceLimit) instead of refused.
   */
  serviceLimit: z
    .strictObject({ elevenlabs: limit.optional(), cartesia: limit.optional() })
    .optional(),
});
export type SandboxConfigPatch = z.infer<typeof sandboxConfigPatchSchema>;

const foreignVoiceSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  /** ElevenLabs only; `premade` voices take no slot. */
  category: z.enum(['premade', 'cloned', 'generated', 'professional']).optional(),
});
export type ForeignVoiceInput = z.infer<typeof foreignVoiceSchema>;

export interface SandboxOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** ElevenLabs default 10, Cartesia default 100. */
  voiceLimit?: { elevenlabs?: number; cartesia?: number };
  /** Added to every provider request. */
  latencyMs?: number;
  faults?: SandboxConfigPatch['faults'];
  seed?: number;
  /** ElevenLabs' clone budget; default 1,000,000 per 30 days, so nothing else notices it. */
  cloneBudget?: { limit?: number | null; periodSeconds?: number };
  /** See SandboxConfigPatch.serviceLimit. */
  serviceLimit?: { elevenlabs?: number; cartesia?: number };
}

export interface SandboxCloneBudgetView {
  limit: number | null;
  used: number;
  /** When the counter next returns to 0 (ISO-8601). */
  resetsAt: string;
  periodSeconds: number;
}

export interface SandboxConfigView {
  latencyMs: number;
  voiceLimit: Record<ProviderName, number>;
  cloneBudget: { elevenlabs: SandboxCloneBudgetView };
  faults: Record<ProviderName, ProviderFaults>;
  seed: number;
  serviceLimit: Record<ProviderName, number | null>;
}

export interface SandboxVoice {
  id: string;
  name: string;
  description: string;
  labels: Record<string, string>;
  category: string;
  language: string | null;
  /** The key from labels.vs_key or the description's `vs_key:`, null for a foreign voice. */
  idempotencyKey: string | null;
  createdAt: string;
  sampleBytes: number;
  /** Added through the control API rather than by a create. */
  foreign: boolean;
}

export interface SandboxProviderState {
  voices: SandboxVoice[];
  /** Voices taking a slot now. */
  held: number;
  limit: number;
  /** The most voices held at once since the last reset. */
  maxHeld: number;
  voiceLimitReachedCount: number;
  /** Creates refused with voice_add_edit_limit_reached. */
  budgetRefusedCount: number;
  /** Voices created through the API, including those whose answer was lost. */
  createCount: number;
  /** Create requests received, whatever became of them. */
  createAttempts: number;
  deleteCount: number;
  /** Idempotency keys carried by more than one live voice: each is a double clone. */
  duplicateKeys: string[];
  /**
   * Fault accounting recorded as it happens, so a condition that did not last until the state is
   * read still counts. The most voices held beyond the service's limit at any moment (0 without
   * a serviceLimit):
   */
  maxOverServiceLimit: number;
  /** Every moment a create made a second live voice with a key that already had one. */
  duplicatesEverAlive: Array<{ key: string; at: string }>;
  /** Deletes through the API, since the last reconciliation mark, of voices carrying our key. */
  keyedDeletesSinceMark: number | null;
  requests: Record<SandboxOperation, number>;
  faultsInjected: { error5xx: number; rateLimit: number; timeout: number; lostAnswer: number };
  /** Bytes of audio received by creates. */
  bytesReceived: number;
}

export type SandboxState = Record<ProviderName, SandboxProviderState>;

export interface SandboxHandle {
  /** e.g. http://127.0.0.1:4010 */
  url: string;
  port: number;
  /** The base URL an adapter takes, e.g. http://127.0.0.1:4010/elevenlabs */
  baseUrl(provider: ProviderName): string;
  /** Same as PUT /_sandbox/config. Throws on an invalid patch. */
  setConfig(patch: SandboxConfigPatch): SandboxConfigView;
  config(): SandboxConfigView;
  /** Same as POST /_sandbox/reset: voices, faults and stats cleared, start options restored. */
  reset(): void;
  /** Same as GET /_sandbox/state. */
  state(): SandboxState;
  /** Same as POST /_sandbox/{provider}/foreign: a voice without our key, e.g. made by hand. */
  addForeignVoice(provider: ProviderName, input?: ForeignVoiceInput): SandboxVoice;
  /** Same as DELETE /_sandbox/{provider}/voices/{id}: a voice vanishing behind our back. */
  removeVoice(provider: ProviderName, id: string): boolean;
  /** Same as POST /_sandbox/reconciliation-mark: count keyed deletes from now on. */
  markReconciliation(): void;
  /**
   * Voices taking a slot over time: one entry per change (epoch ms, the count from then on),
   * starting with the count at the last reset; the latest HELD_HISTORY_MAX changes. Utilisation is
   * counted from this, at the provider, not from the service's own view.
   */
  heldOverTime(provider: ProviderName): ReadonlyArray<{ at: number; held: number }>;
  /** Stops listening and drops every connection, held ones included. */
  close(): Promise<void>;
}

interface StoredVoice extends SandboxVoice {
  seq: number;
  createdAtMs: number;
  files: Array<{ name: string; mimeType: string; size: number }>;
}

interface ProviderStore {
  voices: Map<string, StoredVoice>;
  heldHistory: Array<{ at: number; held: number }>;
  /** Sequence numbers of every id ever seen, so a cursor on a deleted voice still works. */
  seqOf: Map<string, number>;
  stats: Omit<SandboxProviderState, 'voices' | 'held' | 'limit' | 'duplicateKeys'>;
}

interface Upload {
  fields: Map<string, string>;
  files: Array<{ field: string; filename: string; mimeType: string; size: number }>;
}

/** Answer and end; the handlers return this so every path ends in exactly one answer. */
type Answer =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string; headers?: Record<string, string> }
  | { status: 204 };

const DEFAULT_LIMITS: Record<ProviderName, number> = { elevenlabs: 10, cartesia: 100 };
const DEFAULT_HOLD_MS = 60_000;
const DEFAULT_CLONE_BUDGET = 1_000_000;
const DEFAULT_BUDGET_PERIOD_SECONDS = 30 * 86_400;
const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;
/** Changes of the held count kept for heldOverTime: a long-running sandbox stays bounded. */
export const HELD_HISTORY_MAX = 100_000;

function emptyStats(): ProviderStore['stats'] {
  return {
    maxHeld: 0,
    voiceLimitReachedCount: 0,
    budgetRefusedCount: 0,
    createCount: 0,
    createAttempts: 0,
    deleteCount: 0,
    requests: { create: 0, delete: 0, get: 0, list: 0, account: 0 },
    faultsInjected: { error5xx: 0, rateLimit: 0, timeout: 0, lostAnswer: 0 },
    bytesReceived: 0,
    maxOverServiceLimit: 0,
    duplicatesEverAlive: [],
    keyedDeletesSinceMark: null,
  };
}

class SandboxError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly issues?: unknown,
  ) {
    super(message);
  }
}

class Sandbox {
  private readonly stores: Record<ProviderName, ProviderStore>;
  private cfg!: SandboxConfigView;
  private random!: () => number;
  private nextSeq = 1;
  /** ElevenLabs' add/edit counter and the moment it next returns to 0 (epoch ms). */
  private budget!: { limit: number | null; used: number; resetAtMs: number; periodMs: number };
  /** Aborted on close: ends every latency sleep and held request at once. */
  private readonly closing = new AbortController();

  constructor(private readonly start: SandboxOptions) {
    this.stores = { elevenlabs: this.emptyStore(), cartesia: this.emptyStore() };
    this.reset();
  }

  get closeSignal(): AbortSignal {
    return this.closing.signal;
  }

  abort(): void {
    this.closing.abort();
  }

  private emptyStore(): ProviderStore {
    return {
      voices: new Map(),
      heldHistory: [{ at: Date.now(), held: 0 }],
      seqOf: new Map(),
      stats: emptyStats(),
    };
  }

  reset(): void {
    for (const p of SANDBOX_PROVIDERS) this.stores[p] = this.emptyStore();
    this.cfg = {
      latencyMs: this.start.latencyMs ?? 0,
      voiceLimit: {
        elevenlabs: this.start.voiceLimit?.elevenlabs ?? DEFAULT_LIMITS.elevenlabs,
        cartesia: this.start.voiceLimit?.cartesia ?? DEFAULT_LIMITS.cartesia,
      },
      cloneBudget: { elevenlabs: { limit: null, used: 0, resetsAt: '', periodSeconds: 0 } },
      faults: { elevenlabs: {}, cartesia: {} },
      seed: this.start.seed ?? randomInt(0, 2 ** 31),
      serviceLimit: {
        elevenlabs: this.start.serviceLimit?.elevenlabs ?? null,
        cartesia: this.start.serviceLimit?.cartesia ?? null,
      },
    };
    const periodMs =
      (this.start.cloneBudget?.periodSeconds ?? DEFAULT_BUDGET_PERIOD_SECONDS) * 1000;
    this.budget = {
      limit:
        this.start.cloneBudget?.limit === undefined
          ? DEFAULT_CLONE_BUDGET
          : this.start.cloneBudget.limit,
      used: 0,
      resetAtMs: Date.now() + periodMs,
      periodMs,
    };
    this.random = seededRandom(this.cfg.seed);
    if (this.start.faults) this.setConfig({ faults: this.start.faults });
  }

  config(): SandboxConfigView {
    const view = structuredClone(this.cfg);
    view.cloneBudget.elevenlabs = this.cloneBudgetView();
    return view;
  }

  /** The counter returns to 0 at each reset, as a billing cycle ends. */
  private rollBudget(now = Date.now()): void {
    while (now >= this.budget.resetAtMs) {
      this.budget.used = 0;
      this.budget.resetAtMs += this.budget.periodMs;
    }
  }

  cloneBudgetView(): SandboxCloneBudgetView {
    this.rollBudget();
    return {
      limit: this.budget.limit,
      used: this.budget.used,
      resetsAt: new Date(this.budget.resetAtMs).toISOString(),
      periodSeconds: this.budget.periodMs / 1000,
    };
  }

  /** Spends one add/edit operation; false (nothing spent) when the budget is used up. */
  spendClone(): boolean {
    this.rollBudget();
    if (this.budget.limit !== null && this.budget.used >= this.budget.limit) return false;
    this.budget.used++;
    return true;
  }

  setConfig(input: unknown): SandboxConfigView {
    const parsed = sandboxConfigPatchSchema.safeParse(input);
    if (!parsed.success) {
      throw new SandboxError(400, 'invalid sandbox config', parsed.error.issues);
    }
    const patch = parsed.data;
    if (patch.latencyMs !== undefined) this.cfg.latencyMs = patch.latencyMs;
    for (const p of SANDBOX_PROVIDERS) {
      const l = patch.voiceLimit?.[p];
      if (l !== undefined) this.cfg.voiceLimit[p] = l;
      const f = patch.faults?.[p];
      if (f !== undefined) this.cfg.faults[p] = f;
      const service = patch.serviceLimit?.[p];
      if (service !== undefined) this.cfg.serviceLimit[p] = service;
    }
    const b = patch.cloneBudget?.elevenlabs;
    if (b) {
      this.rollBudget();
      if (b.periodSeconds !== undefined) this.budget.periodMs = b.periodSeconds * 1000;
      if (b.limit !== undefined) this.budget.limit = b.limit;
      if (b.used !== undefined) this.budget.used = b.used;
      if (b.resetInSeconds !== undefined)
        this.budget.resetAtMs = Date.now() + b.resetInSeconds * 1000;
    }
    if (patch.seed !== undefined) {
      this.cfg.seed = patch.seed;
      this.random = seededRandom(patch.seed);
    }
    return this.config();
  }

  state(): SandboxState {
    const out = {} as SandboxState;
    for (const p of SANDBOX_PROVIDERS) {
      const store = this.stores[p];
      const voices = [...store.voices.values()].sort((a, b) => a.seq - b.seq);
      const byKey = new Map<string, number>();
      for (const v of voices) {
        if (v.idempotencyKey) byKey.set(v.idempotencyKey, (byKey.get(v.idempotencyKey) ?? 0) + 1);
      }
      out[p] = {
        ...structuredClone(store.stats),
        voices: voices.map(publicVoice),
        held: this.held(p),
        limit: this.cfg.voiceLimit[p],
        duplicateKeys: [...byKey].filter(([, n]) => n > 1).map(([k]) => k),
      };
    }
    return out;
  }

  held(p: ProviderName): number {
    let n = 0;
    for (const v of this.stores[p].voices.values()) if (v.category !== 'premade') n++;
    return n;
  }

  heldOverTime(p: ProviderName): ReadonlyArray<{ at: number; held: number }> {
    return this.stores[p].heldHistory;
  }

  /** Records the held count after a voice came or went. */
  private noteHeld(p: ProviderName, held = this.held(p)): void {
    const history = this.stores[p].heldHistory;
    if (history[history.length - 1].held === held) return;
    history.push({ at: Date.now(), held });
    if (history.length > HELD_HISTORY_MAX) history.splice(0, history.length - HELD_HISTORY_MAX);
  }

  addVoice(
    p: ProviderName,
    v: Omit<StoredVoice, 'seq' | 'id' | 'createdAt' | 'createdAtMs' | 'idempotencyKey'>,
  ): StoredVoice {
    const store = this.stores[p];
    const id = p === 'elevenlabs' ? elevenLabsId() : randomUUID();
    const now = Date.now();
    const voice: StoredVoice = {
      ...v,
      id,
      seq: this.nextSeq++,
      createdAtMs: now,
      createdAt: new Date(now).toISOString(),
      idempotencyKey: keyFromMetadata(v.labels, v.description),
    };
    if (voice.idempotencyKey) {
      for (const other of store.voices.values()) {
        if (other.idempotencyKey !== voice.idempotencyKey) continue;
        store.stats.duplicatesEverAlive.push({ key: voice.idempotencyKey, at: voice.createdAt });
        break;
      }
    }
    store.voices.set(id, voice);
    store.seqOf.set(id, voice.seq);
    const held = this.held(p);
    this.noteHeld(p, held);
    store.stats.maxHeld = Math.max(store.stats.maxHeld, held);
    const serviceLimit = this.cfg.serviceLimit[p];
    if (serviceLimit !== null)
      store.stats.maxOverServiceLimit = Math.max(
        store.stats.maxOverServiceLimit,
        held - serviceLimit,
      );
    return voice;
  }

  /**
   * From now on, count the API's deletes of voices carrying our key: called just before the
   * service is asked to reconcile, when every voice it owns is settled, so each such delete is a
   * remote voice reconciliation had to remove (an orphan that faults left behind).
   */
  markReconciliation(): void {
    for (const p of SANDBOX_PROVIDERS) this.stores[p].stats.keyedDeletesSinceMark = 0;
  }

  /** A delete through a provider API; false when there is no such voice. */
  deleteByApi(p: ProviderName, id: string): boolean {
    const store = this.stores[p];
    const voice = store.voices.get(id);
    if (!voice) return false;
    store.voices.delete(id);
    this.noteHeld(p);
    if (voice.idempotencyKey && store.stats.keyedDeletesSinceMark !== null)
      store.stats.keyedDeletesSinceMark++;
    return true;
  }

  addForeignVoice(p: ProviderName, input: unknown = {}): SandboxVoice {
    const parsed = foreignVoiceSchema.safeParse(input ?? {});
    if (!parsed.success) throw new SandboxError(400, 'invalid foreign voice', parsed.error.issues);
    const f = parsed.data;
    // Not held to the limit: a voice made by hand, or a plan downgrade, can overfill an account.
    return publicVoice(
      this.addVoice(p, {
        name: f.name ?? `foreign ${randomBytes(3).toString('hex')}`,
        description: f.description ?? '',
        labels: f.labels ?? {},
        category: p === 'elevenlabs' ? (f.category ?? 'cloned') : 'cloned',
        language: p === 'cartesia' ? 'en' : null,
        sampleBytes: 0,
        foreign: true,
        files: [],
      }),
    );
  }

  removeVoice(p: ProviderName, id: string): boolean {
    const removed = this.stores[p].voices.delete(id);
    this.noteHeld(p);
    return removed;
  }

  store(p: ProviderName): ProviderStore {
    return this.stores[p];
  }

  limit(p: ProviderName): number {
    return this.cfg.voiceLimit[p];
  }

  latencyMs(): number {
    return this.cfg.latencyMs;
  }

  /** One roll of the dice decides at most one fault, so the rates read as shares of requests. */
  rollFault(
    p: ProviderName,
    op: SandboxOperation,
  ): { kind: 'error5xx' | 'rateLimit' | 'timeout' | 'lostAnswer' | null; rates: FaultRates } {
    const faults = this.cfg.faults[p];
    const rates: FaultRates = { ...faults.any, ...faults[op] };
    const r = this.random();
    let acc = 0;
    for (const kind of ['timeout', 'rateLimit', 'error5xx', 'lostAnswer'] as const) {
      acc += rates[kind] ?? 0;
      if (r < acc) {
        this.stores[p].stats.faultsInjected[kind]++;
        return { kind, rates };
      }
    }
    return { kind: null, rates };
  }
}

function publicVoice(v: StoredVoice): SandboxVoice {
  return {
    id: v.id,
    name: v.name,
    description: v.description,
    labels: { ...v.labels },
    category: v.category,
    language: v.language,
    idempotencyKey: v.idempotencyKey,
    createdAt: v.createdAt,
    sampleBytes: v.sampleBytes,
    foreign: v.foreign,
  };
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** ElevenLabs ids are 20 alphanumerics. */
function elevenLabsId(): string {
  return Array.from(randomBytes(20), (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('');
}

function encodeToken(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString('base64url');
}

function decodeToken(token: string): number | null {
  const m = /^seq:(\d+)$/.exec(Buffer.from(token, 'base64url').toString());
  return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------------- request plumbing

/** Reads the whole multipart body, counting the bytes of each file part (never kept). */
function readUpload(req: IncomingMessage): Promise<Upload> {
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

function drain(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    if (req.readableEnded) return resolve();
    req.on('end', resolve);
    req.on('error', () => resolve());
    req.resume();
  });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
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

function send(res: ServerResponse, answer: Answer): void {
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

// ---------------------------------------------------------------- provider dialects

interface Dialect {
  /** Matches a path (without the provider prefix) to an operation and its voice id. */
  route(method: string, path: string): { op: SandboxOperation; id?: string } | null;
  authorized(req: IncomingMessage): Answer | null;
  error(status: number, code: string, message: string, headers?: Record<string, string>): Answer;
  throttleCode: string;
  handle(
    sb: Sandbox,
    op: SandboxOperation,
    id: string | undefined,
    url: URL,
    upload: Upload | null,
  ): Answer;
}

function requestId(): string {
  return randomBytes(8).toString('hex');
}

const elevenLabs: Dialect = {
  route(method, path) {
    if (method === 'POST' && path === '/v1/voices/add') return { op: 'create' };
    if (method === 'GET' && path === '/v2/voices') return { op: 'list' };
    if (method === 'GET' && path === '/v1/user/subscription') return { op: 'account' };
    const m = /^\/v1\/voices\/([^/]+)$/.exec(path);
    if (m && m[1] !== 'add') {
      const id = decodeURIComponent(m[1]);
      if (method === 'GET') return { op: 'get', id };
      if (method === 'DELETE') return { op: 'delete', id };
    }
    return null;
  },
  authorized(req) {
    return req.headers['xi-api-key'] ? null : this.error(401, 'invalid_api_key', 'Invalid API key');
  },
  error(status, code, message, headers) {
    return { status, json: { detail: { status: code, message } }, headers };
  },
  throttleCode: 'too_many_concurrent_requests',
  handle(sb, op, id, url, upload) {
    const store = sb.store('elevenlabs');
    switch (op) {
      case 'create': {
        const missing: Array<{ loc: string[]; msg: string; type: string }> = [];
        const name = upload?.fields.get('name');
        const files = (upload?.files ?? []).filter(
          (f) => f.field === 'files' || f.field === 'files[]',
        );
        if (!name) missing.push({ loc: ['body', 'name'], msg: 'Field required', type: 'missing' });
        if (files.length === 0) {
          missing.push({ loc: ['body', 'files'], msg: 'Field required', type: 'missing' });
        }
        let labels: Record<string, string> = {};
        const rawLabels = upload?.fields.get('labels');
        if (rawLabels) {
          const parsed = z.record(z.string(), z.string()).safeParse(safeJson(rawLabels));
          if (parsed.success) labels = parsed.data;
          else
            missing.push({ loc: ['body', 'labels'], msg: 'Invalid JSON map', type: 'value_error' });
        }
        if (missing.length > 0 || !name) return { status: 422, json: { detail: missing } };
        if (files.some((f) => f.size === 0)) {
          return this.error(400, 'invalid_file', 'An uploaded file is empty');
        }
        const limit = sb.limit('elevenlabs');
        if (sb.held('elevenlabs') >= limit) {
          store.stats.voiceLimitReachedCount++;
          return this.error(
            400,
            'voice_limit_reached',
            `You have reached your maximum amount of custom voices (${limit} / ${limit})`,
          );
        }
        if (!sb.spendClone()) {
          store.stats.budgetRefusedCount++;
          const b = sb.cloneBudgetView();
          return this.error(
            403,
            'voice_add_edit_limit_reached',
            `You have reached your monthly limit of voice add/edit operations (${b.used} / ${b.limit}). ` +
              'It resets at the start of your next billing cycle.',
          );
        }
        const bytes = files.reduce((n, f) => n + f.size, 0);
        const voice = sb.addVoice('elevenlabs', {
          name,
          description: upload?.fields.get('description') ?? '',
          labels,
          category: 'cloned',
          language: null,
          sampleBytes: bytes,
          foreign: false,
          files: files.map((f) => ({ name: f.filename, mimeType: f.mimeType, size: f.size })),
        });
        store.stats.createCount++;
        return { status: 200, json: { voice_id: voice.id, requires_verification: false } };
      }
      case 'delete': {
        if (!id || !sb.deleteByApi('elevenlabs', id)) {
          // Old envelope and status 400 here, new envelope and 404 on get: as seen in the wild.
          return this.error(
            400,
            'voice_not_found',
            `A voice with the voice_id ${id} was not found.`,
          );
        }
        store.stats.deleteCount++;
        return { status: 200, json: { status: 'ok' } };
      }
      case 'get': {
        const v = id ? store.voices.get(id) : undefined;
        if (!v) {
          return {
            status: 404,
            json: {
              detail: {
                type: 'not_found',
                code: 'voice_not_found',
                message: `A voice with the voice_id ${id} was not found.`,
                request_id: requestId(),
              },
            },
          };
        }
        return { status: 200, json: elevenLabsVoice(v) };
      }
      case 'list': {
        const q = url.searchParams;
        const pageSize = Number(q.get('page_size') ?? '10');
        if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
          return {
            status: 422,
            json: {
              detail: [
                {
                  loc: ['query', 'page_size'],
                  msg: 'Input should be less than or equal to 100',
                  type: 'less_than_equal',
                },
              ],
            },
          };
        }
        let after = 0;
        const token = q.get('next_page_token');
        if (token) {
          const seq = decodeToken(token);
          if (seq === null) return this.error(400, 'invalid_page_token', 'Invalid next_page_token');
          after = seq;
        }
        const category = q.get('category');
        const search = q.get('search')?.toLowerCase();
        const matching = [...store.voices.values()]
          .filter((v) => !category || v.category === category)
          .filter(
            (v) =>
              !search ||
              [v.name, v.description, v.category, ...Object.values(v.labels)].some((s) =>
                s.toLowerCase().includes(search),
              ),
          )
          .sort((a, b) => a.seq - b.seq);
        const rest = matching.filter((v) => v.seq > after);
        const page = rest.slice(0, pageSize);
        const hasMore = rest.length > page.length;
        return {
          status: 200,
          json: {
            voices: page.map(elevenLabsVoice),
            has_more: hasMore,
            total_count: matching.length,
            next_page_token: hasMore ? encodeToken(page[page.length - 1].seq) : null,
          },
        };
      }
      case 'account': {
        const budget = sb.cloneBudgetView();
        return {
          status: 200,
          json: {
            tier: 'sandbox',
            status: 'active',
            character_count: 0,
            character_limit: 1_000_000,
            can_use_instant_voice_cloning: true,
            can_use_professional_voice_cloning: false,
            voice_limit: sb.limit('elevenlabs'),
            voice_slots_used: sb.held('elevenlabs'),
            professional_voice_limit: 0,
            voice_add_edit_counter: budget.used,
            max_voice_add_edits: budget.limit,
            next_character_count_reset_unix: Math.floor(Date.parse(budget.resetsAt) / 1000),
          },
        };
      }
    }
  },
};

function elevenLabsVoice(v: StoredVoice): unknown {
  return {
    voice_id: v.id,
    name: v.name,
    category: v.category,
    description: v.description,
    labels: v.labels,
    created_at_unix: Math.floor(v.createdAtMs / 1000),
    is_owner: true,
    samples: v.files.map((f, i) => ({
      sample_id: `${v.id}-${i}`,
      file_name: f.name,
      mime_type: f.mimeType,
      size_bytes: f.size,
    })),
  };
}

const cartesia: Dialect = {
  route(method, path) {
    if (method === 'POST' && path === '/voices/clone') return { op: 'create' };
    if (method === 'GET' && path === '/voices') return { op: 'list' };
    const m = /^\/voices\/([^/]+)$/.exec(path);
    if (m && m[1] !== 'clone') {
      const id = decodeURIComponent(m[1]);
      if (method === 'GET') return { op: 'get', id };
      if (method === 'DELETE') return { op: 'delete', id };
    }
    return null;
  },
  authorized(req) {
    const auth = req.headers.authorization;
    const bearer = typeof auth === 'string' && /^Bearer \S+/.test(auth);
    if (!bearer && !req.headers['x-api-key']) {
      return this.error(401, 'unauthorized', 'Missing or invalid API key');
    }
    if (!req.headers['cartesia-version']) {
      return this.error(400, 'missing_version', 'The Cartesia-Version header is required');
    }
    return null;
  },
  error(status, code, message, headers) {
    const title = http.STATUS_CODES[status] ?? 'Error';
    return {
      status,
      json: { error_code: code, title, message, request_id: requestId() },
      headers,
    };
  },
  throttleCode: 'concurrency_limited',
  handle(sb, op, id, url, upload) {
    const store = sb.store('cartesia');
    switch (op) {
      case 'create': {
        const name = upload?.fields.get('name');
        const language = upload?.fields.get('language');
        const clip = upload?.files.find((f) => f.field === 'clip');
        if (!name) return this.error(400, 'invalid_request', 'name is required');
        if (!clip) return this.error(400, 'invalid_request', 'clip is required');
        if (clip.size === 0) return this.error(400, 'invalid_request', 'clip is empty');
        if (!language) return this.error(400, 'invalid_request', 'language is required');
        const limit = sb.limit('cartesia');
        if (sb.held('cartesia') >= limit) {
          store.stats.voiceLimitReachedCount++;
          return this.error(
            400,
            'voice_limit_reached',
            `Sandbox voice limit reached (${limit} / ${limit})`,
          );
        }
        const voice = sb.addVoice('cartesia', {
          name,
          description: upload?.fields.get('description') ?? '',
          labels: {},
          category: 'cloned',
          language,
          sampleBytes: clip.size,
          foreign: false,
          files: [{ name: clip.filename, mimeType: clip.mimeType, size: clip.size }],
        });
        store.stats.createCount++;
        return { status: 200, json: cartesiaVoice(voice) };
      }
      case 'delete':
        if (!id || !sb.deleteByApi('cartesia', id))
          return this.error(404, 'not_found', 'Voice not found');
        store.stats.deleteCount++;
        return { status: 204 };
      case 'get': {
        const v = id ? store.voices.get(id) : undefined;
        return v
          ? { status: 200, json: cartesiaVoice(v) }
          : this.error(404, 'not_found', 'Voice not found');
      }
      case 'list': {
        const q = url.searchParams;
        const limit = Number(q.get('limit') ?? '10');
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
          return this.error(400, 'invalid_request', 'limit must be between 1 and 100');
        }
        let after = 0;
        const startingAfter = q.get('starting_after');
        if (startingAfter) {
          const seq = store.seqOf.get(startingAfter);
          if (seq === undefined)
            return this.error(400, 'invalid_request', 'unknown starting_after');
          after = seq;
        }
        // Every sandbox voice is the caller's own: is_owner=true and no filter answer the same.
        const rest = [...store.voices.values()]
          .filter((v) => v.seq > after)
          .sort((a, b) => a.seq - b.seq);
        const page = rest.slice(0, limit);
        const hasMore = rest.length > page.length;
        return {
          status: 200,
          json: {
            data: page.map(cartesiaVoice),
            has_more: hasMore,
            next_page: hasMore ? page[page.length - 1].id : null,
          },
        };
      }
      case 'account':
        return this.error(404, 'not_found', 'Not found');
    }
  },
};

function cartesiaVoice(v: StoredVoice): unknown {
  return {
    id: v.id,
    user_id: 'sandbox-user',
    name: v.name,
    description: v.description,
    language: v.language ?? 'en',
    is_public: false,
    is_owner: true,
    created_at: v.createdAt,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const DIALECTS: Record<ProviderName, Dialect> = { elevenlabs: elevenLabs, cartesia };

// ---------------------------------------------------------------- server

async function handleProvider(
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

async function handleControl(
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

/** Starts the sandbox. Resolves once it listens; `close()` stops it and drops held requests. */
export async function startSandbox(opts: SandboxOptions = {}): Promise<SandboxHandle> {
  const sb = new Sandbox(opts);
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const path = url.pathname;
    let work: Promise<void>;
    const provider = SANDBOX_PROVIDERS.find((p) => path === `/${p}` || path.startsWith(`/${p}/`));
    if (path.startsWith('/_sandbox/')) {
      work = handleControl(sb, path.slice('/_sandbox'.length), req, res);
    } else if (provider) {
      work = handleProvider(sb, provider, path.slice(provider.length + 1), url, req, res);
    } else {
      work = drain(req).then(() => send(res, { status: 404, text: 'Not Found' }));
    }
    work.catch((err: unknown) => {
      if (sb.closeSignal.aborted) {
        res.socket?.destroy();
      } else if (err instanceof SandboxError) {
        send(res, { status: err.status, json: { error: err.message, issues: err.issues } });
      } else {
        send(res, {
          status: 500,
          json: { error: err instanceof Error ? err.message : String(err) },
        });
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  let closed: Promise<void> | null = null;
  return {
    url,
    port: address.port,
    baseUrl: (provider) => `${url}/${provider}`,
    setConfig: (patch) => sb.setConfig(patch),
    config: () => sb.config(),
    reset: () => sb.reset(),
    state: () => sb.state(),
    addForeignVoice: (provider, input) => sb.addForeignVoice(provider, input),
    removeVoice: (provider, id) => sb.removeVoice(provider, id),
    markReconciliation: () => sb.markReconciliation(),
    heldOverTime: (provider) => sb.heldOverTime(provider),
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        sb.abort();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
