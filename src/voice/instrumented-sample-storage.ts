import type { Readable } from 'node:stream';
import {
  SampleStorage,
  SampleTooLargeError,
  type ListedSample,
  type StoredSample,
} from './sample-storage.port';
import { withSpan } from '../observability/tracing-helpers';

export type StorageOperation = 'put' | 'open' | 'remove' | 'check' | 'list' | 'sweep';

/** Told about storage failures (metrics count them); registered after construction. */
export type StorageFailureObserver = (operation: StorageOperation) => void;

/**
 * Decorates the sample storage with a span per operation (`storage.put`, `storage.open`,
 * `storage.remove`,
 * with `storage.driver` and `sample.key`) and reports failures to an observer. A sample over the
 * size cap is the client's doing, not a storage fault: it marks the span but is not reported.
 * `open` covers opening the stream; a failure while reading it surfaces in the reader's span.
 */
export class InstrumentedSampleStorage extends SampleStorage {
  private observer: StorageFailureObserver | null = null;

  constructor(
    private readonly inner: SampleStorage,
    private readonly driver: string,
  ) {
    super();
  }

  /** Registers the one failure observer; replaces any earlier one. */
  onFailure(observer: StorageFailureObserver): void {
    this.observer = observer;
  }

  put(key: string, body: Readable, maxBytes: number): Promise<StoredSample> {
    return this.run('put', key, () => this.inner.put(key, body, maxBytes));
  }

  open(key: string): Promise<Readable> {
    return this.run('open', key, () => this.inner.open(key));
  }

  remove(key: string): Promise<void> {
    return this.run('remove', key, () => this.inner.remove(key));
  }

  /** A listing failure is reported; the pages themselves are the sweep's to trace. */
  async *listSamples(): AsyncGenerator<ListedSample[]> {
    try {
      yield* this.inner.listSamples();
    } catch (err) {
      this.report('list');
      throw err;
    }
  }

  removeAbandonedWrites(before: Date): Promise<number> {
    return this.run('sweep', '*', () => this.inner.removeAbandonedWrites(before));
  }

  /** No span: readiness probes call this every few seconds, outside any trace. */
  async check(): Promise<void> {
    try {
      await this.inner.check();
    } catch (err) {
      this.report('check');
      throw err;
    }
  }

  private run<T>(operation: StorageOperation, key: string, fn: () => Promise<T>) {
    const attributes = { 'storage.driver': this.driver, 'sample.key': key };
    return withSpan(`storage.${operation}`, attributes, async () => {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof SampleTooLargeError)) this.report(operation);
        throw err;
      }
    });
  }

  private report(operation: StorageOperation): void {
    try {
      this.observer?.(operation);
    } catch {
      // Metrics must never change what a storage call returns.
    }
  }
}
