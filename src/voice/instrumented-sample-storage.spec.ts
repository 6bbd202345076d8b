import { Readable } from 'node:stream';
import { SampleStorage, SampleTooLargeError } from './sample-storage.port';
import { InstrumentedSampleStorage, type StorageOperation } from './instrumented-sample-storage';

class FailingStorage extends SampleStorage {
  put(): Promise<never> {
    return Promise.reject(new SampleTooLargeError(10));
  }
  open(): Promise<Readable> {
    return Promise.reject(new Error('ENOENT'));
  }
  remove(): Promise<void> {
    return Promise.resolve();
  }
  check(): Promise<void> {
    return Promise.reject(new Error('bucket gone'));
  }
  listSamples(): AsyncIterable<never> {
    return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('refused')) }) };
  }
  removeAbandonedWrites(): Promise<number> {
    return Promise.resolve(0);
  }
}

describe('InstrumentedSampleStorage', () => {
  it('reports storage faults, but not a sample over the size cap (the client sent it)', async () => {
    const failures: StorageOperation[] = [];
    const storage = new InstrumentedSampleStorage(new FailingStorage(), 'local');
    storage.onFailure((op) => failures.push(op));

    await expect(storage.put('k', Readable.from([]), 10)).rejects.toBeInstanceOf(
      SampleTooLargeError,
    );
    await expect(storage.open('k')).rejects.toThrow('ENOENT');
    await expect(storage.check()).rejects.toThrow('bucket gone');
    await expect(storage.remove('k')).resolves.toBeUndefined();

    expect(failures).toEqual(['open', 'check']);
  });
});
