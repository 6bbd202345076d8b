import {
  assertTransition,
  mayTransition,
  sourcesOf,
  VOICE_STATUSES,
  type VoiceStatus,
} from './voice-status';

/**
 * Written out by hand from ARCHITECTURE.md's state diagram and the transitions the code makes
 * (see voice-status.ts), so a change of the table has to be made twice, on purpose.
 */
const ALLOWED: readonly (readonly [VoiceStatus, VoiceStatus])[] = [
  ['pending', 'queued'],
  ['pending', 'failed'],
  ['pending', 'deleted'],
  ['queued', 'allocating'],
  ['queued', 'deleted'],
  ['allocating', 'allocating'],
  ['allocating', 'ready'],
  ['allocating', 'queued'],
  ['allocating', 'failed'],
  ['allocating', 'deleted'],
  ['ready', 'ready'],
  ['ready', 'reclaiming'],
  ['ready', 'reclaimed'],
  ['ready', 'deleted'],
  ['reclaiming', 'reclaimed'],
  ['reclaiming', 'deleted'],
  ['reclaimed', 'queued'],
  ['reclaimed', 'deleted'],
  ['failed', 'queued'],
  ['failed', 'deleted'],
];
const allowed = new Set(ALLOWED.map(([from, to]) => `${from}->${to}`));
const pairs = VOICE_STATUSES.flatMap((from) => VOICE_STATUSES.map((to) => [from, to] as const));

describe('the voice transition table', () => {
  it.each(pairs)('%s -> %s is allowed exactly when the state diagram says so', (from, to) => {
    const expected = allowed.has(`${from}->${to}`);
    expect(mayTransition(from, to)).toBe(expected);
    if (expected) expect(() => assertTransition([from], to)).not.toThrow();
    else expect(() => assertTransition([from], to)).toThrow(`${from} -> ${to}`);
  });

  it('refuses a write whose allowed sources include one forbidden source', () => {
    expect(() => assertTransition(['pending', 'deleted'], 'queued')).toThrow('deleted -> queued');
  });

  it('names the sources of each state, as the SQL of a transition filters them', () => {
    for (const to of VOICE_STATUSES) {
      expect([...sourcesOf(to)].sort()).toEqual(
        ALLOWED.filter(([, t]) => t === to)
          .map(([f]) => f)
          .sort(),
      );
    }
  });

  it('lets nothing leave deleted', () => {
    expect(VOICE_STATUSES.filter((to) => mayTransition('deleted', to))).toEqual([]);
  });
});
