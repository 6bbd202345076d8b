import { SpanKind } from '@opentelemetry/api';
import { withTraceCarrier, type TraceCarrier } from './trace-context';
import { runWithLogContext, type LogContext } from './log-context';
import { withSpan } from './tracing-helpers';

/** What runJob reads from a Bull job (structural, so any job type fits). */
export interface JobLike {
  id: string | number;
  name: string;
  queue: { name: string };
  data: { voiceId?: string; trace?: TraceCarrier; [field: string]: unknown };
}

/**
 * Runs a job handler inside the job's context: log lines carry jobId, queue and voiceId (plus
 * `extra`), the trace the job carries (the upload request's) continues, and a consumer span
 * `job <name>` covers the handling. Processors call it around their one service call.
 */
export function runJob<T>(job: JobLike, fn: () => Promise<T>, extra: LogContext = {}): Promise<T> {
  const jobId = String(job.id);
  const voiceId = job.data.voiceId;
  return runWithLogContext({ jobId, queue: job.queue.name, voiceId, ...extra }, () =>
    withTraceCarrier(job.data.trace, () =>
      withSpan(
        `job ${job.name}`,
        {
          'messaging.system': 'bull',
          'messaging.destination.name': job.queue.name,
          'messaging.message.id': jobId,
          ...(voiceId ? { 'voice.id': voiceId } : {}),
        },
        fn,
        SpanKind.CONSUMER,
      ),
    ),
  );
}
