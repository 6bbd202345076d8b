/**
 * The replay's trace (CONTRACT.md "Replay of the reclaim policy"): CSV with the header
 * `time,user,voice` and an optional fourth column `hold`; one activation a row, times in seconds
 * from the start, non-decreasing, fractional allowed. Parsed into columns (typed arrays and voice
 * numbers) because a trace may hold a million rows and the replay loops over them many times.
 */

export class TraceError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export interface Trace {
  /** Activation times, seconds. */
  time: Float64Array;
  /** Index into `voices` of each row's voice. */
  voice: Int32Array;
  /** Index into `users` of each row's user. */
  user: Int32Array;
  /** Seconds the voice stays in use after each activation (0 without the column). */
  hold: Float64Array;
  voices: string[];
  users: string[];
  /** Whether the trace had the `hold` column. */
  hasHold: boolean;
}

const NUMBER = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(text: string, what: string, line: number): number {
  const value = NUMBER.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(value)) throw new TraceError(line, `${what} "${text}" is not a number ≥ 0`);
  return value;
}

/**
 * Parses a whole trace. Voices are told apart by the `voice` column alone (the service's voice
 * ids are unique across users). Throws TraceError naming the first bad line.
 */
export function parseTrace(text: string): Trace {
  const lines = text.split('\n');
  const header = (lines[0] ?? '').replace(/\r$/, '').trim();
  let columns: number;
  if (header === 'time,user,voice') columns = 3;
  else if (header === 'time,user,voice,hold') columns = 4;
  else throw new TraceError(1, `expected the header "time,user,voice" or "time,user,voice,hold"`);
  // The last line may be empty (a final newline); any other empty line is an error.
  const last =
    lines.length > 1 && lines[lines.length - 1].trim() === '' ? lines.length - 1 : lines.length;
  const n = last - 1;
  const time = new Float64Array(n);
  const voice = new Int32Array(n);
  const user = new Int32Array(n);
  const hold = new Float64Array(n);
  const voiceIds = new Map<string, number>();
  const userIds = new Map<string, number>();
  const voices: string[] = [];
  const users: string[] = [];
  let previous = 0;
  for (let i = 1; i < last; i++) {
    const lineNo = i + 1;
    const row = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    const cells = row.split(',');
    if (cells.length !== columns)
      throw new TraceError(lineNo, `expected ${columns} columns, found ${cells.length}`);
    const t = parseNumber(cells[0].trim(), 'time', lineNo);
    if (t < previous)
      throw new TraceError(
        lineNo,
        `time ${t} is before the previous row's ${previous} (times must not decrease)`,
      );
    previous = t;
    const u = cells[1].trim();
    const v = cells[2].trim();
    if (u === '') throw new TraceError(lineNo, 'empty user');
    if (v === '') throw new TraceError(lineNo, 'empty voice');
    let vi = voiceIds.get(v);
    if (vi === undefined) {
      vi = voices.length;
      voiceIds.set(v, vi);
      voices.push(v);
    }
    let ui = userIds.get(u);
    if (ui === undefined) {
      ui = users.length;
      userIds.set(u, ui);
      users.push(u);
    }
    const k = i - 1;
    time[k] = t;
    voice[k] = vi;
    user[k] = ui;
    hold[k] = columns === 4 ? parseNumber(cells[3].trim(), 'hold', lineNo) : 0;
  }
  return { time, voice, user, hold, voices, users, hasHold: columns === 4 };
}

/**
 * For each row, the index of the next row with the same voice (Infinity when none): Belady's
 * oracle, in one backward pass.
 */
export function nextUseIndices(trace: Trace): Float64Array {
  const n = trace.voice.length;
  const next = new Float64Array(n);
  const seen = new Float64Array(trace.voices.length).fill(Infinity);
  for (let i = n - 1; i >= 0; i--) {
    const v = trace.voice[i];
    next[i] = seen[v];
    seen[v] = i;
  }
  return next;
}
