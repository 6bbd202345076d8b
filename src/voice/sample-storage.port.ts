import type { Readable } from 'node:stream';

export interface StoredSample {
  key: string;
  sizeBytes: number;
  sha256: string;
}

/** A completed sample found in storage, for the orphan sweep. */
export interface ListedSample {
  key: string;
  /** When its bytes were last written (a finished upload's last write). */
  modifiedAt: Date;
}

const SAMPLE_KEY =
  /^([0-9a-f]{2})\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** Where a voice's sample is stored: spread over 256 prefixes by the first byte of its id. */
export function sampleKeyOf(voiceId: string): string {
  return `${voiceId.slice(0, 2)}/${voiceId}`;
}

/**
 * The voice a stored key belongs to, or null for anything the service did not write: the sweep
 * only ever removes keys of its own shape, whatever else shares the folder or bucket.
 */
export function voiceIdOfSampleKey(key: string): string | null {
  const m = SAMPLE_KEY.exec(key);
  return m && m[2].startsWith(m[1]) ? m[2] : null;
}

/** Thrown when a sample stream exceeds the configured cap; nothing is left in storage. */
export class SampleTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`The sample exceeds ${maxBytes} bytes`);
  }
}

/**
 * Where samples live between upload and cloning. Writes stream with a size cap and a sha256;
 * reads stream too, so a sample is never held whole in memory.
 */
export abstract class SampleStorage {
  /** Streams `body` to `key`. On any error (including the cap) the partial object is removed. */
  abstract put(key: string, body: Readable, maxBytes: number): Promise<StoredSample>;
  abstract open(key: string): Promise<Readable>;
  /** Removes the sample; a missing one is not an error. */
  abstract remove(key: string): Promise<void>;
  /**
   * Every stored sample of the service's key shape, a page at a time (unfinished writes are not
   * samples and are left out).
   */
  abstract listSamples(): AsyncIterable<ListedSample[]>;
  /**
   * Removes unfinished writes (a `.part` file, an incomplete multipart upload) last touched before
   * `before`, as a crash mid-upload leaves them; returns how many went.
   */
  abstract removeAbandonedWrites(before: Date): Promise<number>;
  /** Cheap reachability check for readiness probes. */
  abstract check(): Promise<void>;
}
