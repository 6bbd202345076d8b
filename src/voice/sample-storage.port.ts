import type { Readable } from 'node:stream';

export interface StoredSample {
  key: string;
  sizeBytes: number;
  sha256: string;
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
  /** Cheap reachability check for readiness probes. */
  abstract check(): Promise<void>;
}
