import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { SampleTooLargeError } from './sample-storage.port';

/**
 * A pass-through that counts and hashes bytes, and fails the pipeline as soon as the cap is
 * passed, so an oversized upload is refused without being buffered or written in full.
 */
export class MeteredStream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      done(new SampleTooLargeError(this.maxBytes));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
