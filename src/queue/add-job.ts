import type { Job, JobOptions, Queue } from 'bull';
import { withTimeout } from '../common/timeout';

/** A bound on one job add (and the look-up before it) while Redis is slow or away. */
export const QUEUE_ADD_TIMEOUT_MS = 5_000;

/**
 * Adds a job under a fixed id so that concurrent adds of the same work stay one job, even when a
 * finished job of that id is still kept: Bull silently drops an add whose id exists, and a failed
 * job stays (removeOnFail keeps the last 1000), so a clean-up or reclaim re-enqueued by the sweep
 * after its job failed would never run again. A failed or completed job of that id is removed
 * first; a waiting, delayed or active one is left alone, and the add joins it.
 */
export async function addJobReplacingFinished<T>(
  queue: Queue<T>,
  name: string,
  data: T,
  opts: JobOptions & { jobId: string },
): Promise<Job<T>> {
  return withTimeout(
    (async () => {
      const existing = await queue.getJob(opts.jobId);
      if (existing && ((await existing.isFailed()) || (await existing.isCompleted()))) {
        // A job another process is removing at the same moment is gone either way.
        await existing.remove().catch(() => undefined);
      }
      return queue.add(name, data, opts);
    })(),
    QUEUE_ADD_TIMEOUT_MS,
    `${queue.name} add ${opts.jobId}`,
  );
}
