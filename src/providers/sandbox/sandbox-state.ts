import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import type { ProviderName } from '../../config/app-config';
import { seededRandom } from '../../common/seeded-random';
import { keyFromMetadata } from '../voice-metadata';
import { CloneBudget } from './clone-budget';
import { foreignVoiceSchema, SandboxError, sandboxConfigPatchSchema } from './control-schemas';
import { pickFault } from './faults';
import {
  SANDBOX_PROVIDERS,
  type SandboxCloneBudgetView,
  type SandboxConfigView,
  type SandboxOperation,
  type SandboxOptions,
  type SandboxProviderState,
  type SandboxState,
  type SandboxVoice,
} from './sandbox.types';

/**
 * What the sandbox holds: each provider's voices and counters, the config, the clone budget and
 * the seeded dice of its faults. No HTTP here: the server and the dialects read and change it.
 */

export interface StoredVoice extends SandboxVoice {
  seq: number;
  createdAtMs: number;
  files: Array<{ name: string; mimeType: string; size: number }>;
}

export interface ProviderStore {
  voices: Map<string, StoredVoice>;
  heldHistory: Array<{ at: number; held: number }>;
  /** Sequence numbers of every id ever seen, so a cursor on a deleted voice still works. */
  seqOf: Map<string, number>;
  stats: Omit<SandboxProviderState, 'voices' | 'held' | 'limit' | 'duplicateKeys'>;
}

const DEFAULT_LIMITS: Record<ProviderName, number> = { elevenlabs: 10, cartesia: 100 };
const DEFAULT_CLONE_BUDGET = 1_000_000;
const DEFAULT_BUDGET_PERIOD_SECONDS = 30 * 86_400;
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

export class Sandbox {
  private readonly stores: Record<ProviderName, ProviderStore>;
  private cfg!: SandboxConfigView;
  private random!: () => number;
  private nextSeq = 1;
  private budget!: CloneBudget;
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
    this.budget = new CloneBudget(
      this.start.cloneBudget?.limit === undefined
        ? DEFAULT_CLONE_BUDGET
        : this.start.cloneBudget.limit,
      periodMs,
    );
    this.random = seededRandom(this.cfg.seed);
    if (this.start.faults) this.setConfig({ faults: this.start.faults });
  }

  config(): SandboxConfigView {
    const view = structuredClone(this.cfg);
    view.cloneBudget.elevenlabs = this.cloneBudgetView();
    return view;
  }

  cloneBudgetView(): SandboxCloneBudgetView {
    return this.budget.view();
  }

  /** Spends one add/edit operation; false (nothing spent) when the budget is used up. */
  spendClone(): boolean {
    return this.budget.spend();
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
    if (b) this.budget.patch(b);
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

  /** Rolls the dice of the provider's faults for one request, counting the fault it picks. */
  rollFault(p: ProviderName, op: SandboxOperation): ReturnType<typeof pickFault> {
    const fault = pickFault(this.cfg.faults[p], op, this.random());
    if (fault.kind) this.stores[p].stats.faultsInjected[fault.kind]++;
    return fault;
  }
}

export function publicVoice(v: StoredVoice): SandboxVoice {
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
