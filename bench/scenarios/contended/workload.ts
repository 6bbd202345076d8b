import { seededRandom, type Distribution } from '../../lib/common';

export type Strategy = 'fair' | 'legacy';

export interface Params {
  slots: number;
  users: number;
  voicesPerUser: number;
  /** Concurrent usage loops per user: each wants one voice at a time. */
  loopsPerUser: number;
  arrivalSeconds: number;
  /** Mean of the exponential pause between a loop's sessions. */
  meanThinkSeconds: number;
  holdSeconds: [number, number];
  sandboxLatencyMs: number;
  /**
   * The sandbox's own limit is this much above the service's (`slots`), so a claim past the
   * service's limit shows up at the provider instead of being refused there.
   */
  sandboxHeadroom: number;
  activationLeaseSeconds: number;
  reclaimMinIdleSeconds: number;
  reclaimMinResidencySeconds: number;
  drainTimeoutSeconds: number;
  seed: number;
}

/** One usage session of a loop: pause, then want one of the user's voices for a while. */
export interface Session {
  thinkMs: number;
  /** Which of the user's voices, before skipping those the user's other loops hold. */
  pick: number;
  holdMs: number;
}

export interface Wait {
  user: number;
  kind: 'upload' | 'activation' | 'reacquire';
  ms: number;
  /** Still not ready when the run ended: `ms` is a lower bound. */
  unfinished: boolean;
}

/** A usage session's first activation: one row of the replay's trace. */
export interface SessionRecord {
  user: number;
  /** `user:voice`, the voice as the replay's trace names it. */
  voice: string;
  /** When the session wanted its voice (ms from the start), before any upload. */
  atMs: number;
  holdMs: number;
  waitMs: number;
  unfinished: boolean;
  /** The voice was ready: the first activation answered 200. */
  hit: boolean;
}

export interface Sample {
  t: number;
  /** Epoch ms, to line up with the sandbox's record of voices held. */
  at: number;
  queued: number;
  held: number;
  remoteHeld: number;
}

export interface StrategyRun {
  strategy: Strategy;
  waits: Wait[];
  sessionRecords: SessionRecord[];
  samples: Sample[];
  timeToReadyMs: Distribution;
  /** Each session's first activation only (the replay's rows), ms. */
  sessionTimeToReadyMs: Distribution;
  hitRatio: number;
  /** Creates at the provider per 1,000 sessions. */
  clonesPerThousand: number;
  perUserMeanMs: number[];
  jainIndex: number;
  /** At the provider: the sandbox's record of voices held, over the time a backlog existed. */
  utilisationWhileBacklog: number;
  /** The same from the service's own rows (allocating, ready, reclaiming), sampled. */
  serviceUtilisationWhileBacklog: number;
  backlogSamples: number;
  backlogSeconds: number;
  reclaims: number;
  voiceLimitReached: number;
  maxHeldAtProvider: number;
  /** The most voices held at the provider beyond the service's limit at any moment. */
  maxOverServiceLimit: number;
  creates: number;
  interruptions: number;
  unfinished: number;
  /** Requests that failed (an answer other than 200/202, or no answer): each ended a session. */
  requestErrors: number;
  errors: string[];
  sessions: number;
  allocations: number;
}

/**
 * The workload of one loop, drawn from the seed: exponential pauses (so sessions arrive as a
 * Poisson-like stream), a voice and a hold time per session. Both strategies draw the same one.
 */
export function sessionsOf(p: Params, user: number, loop: number): () => Session {
  const random = seededRandom(p.seed * 1000 + user * 10 + loop);
  return () => ({
    thinkMs: Math.round(-Math.log(1 - random()) * p.meanThinkSeconds * 1000),
    pick: Math.floor(random() * p.voicesPerUser),
    holdMs: Math.round(
      1000 * (p.holdSeconds[0] + random() * (p.holdSeconds[1] - p.holdSeconds[0])),
    ),
  });
}
