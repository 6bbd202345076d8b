import { AsyncLocalStorage } from 'node:async_hooks';
import { context, isSpanContextValid, trace } from '@opentelemetry/api';

/**
 * Fields every log line written inside a unit of work carries without each call repeating them:
 * a Bull job's id and queue, the voice it is about, and what is learnt on the way (user, provider).
 */
export interface LogContext {
  /** The HTTP request being served (its X-Request-Id, or a generated one). */
  reqId?: string;
  jobId?: string;
  queue?: string;
  voiceId?: string;
  userId?: string;
  provider?: string;
}

const storage = new AsyncLocalStorage<LogContext>();

/**
 * Runs `fn` with `fields` added to the log context (nested calls keep the outer fields). Wrap each
 * job handler: `runWithLogContext({ jobId: String(job.id), voiceId: job.data.voiceId, queue:
 * job.queue.name }, () => handle(job))`.
 */
export function runWithLogContext<T>(fields: LogContext, fn: () => T): T {
  const outer = storage.getStore();
  return storage.run(outer ? { ...outer, ...defined(fields) } : defined(fields), fn);
}

/**
 * Adds fields to the current context once they are known (e.g. the voice's user and provider
 * after it was loaded). Outside runWithLogContext it does nothing.
 */
export function addLogContext(fields: LogContext): void {
  const store = storage.getStore();
  if (store) Object.assign(store, defined(fields));
}

/**
 * The pino mixin: merges the log context and the active span's trace and span ids into every
 * line, so a line can be found from a trace and the other way round. A field the call itself
 * passes wins over the mixin's.
 */
export function logMixin(): Record<string, string> {
  const fields: Record<string, string> = { ...storage.getStore() };
  const span = trace.getSpan(context.active());
  const spanContext = span?.spanContext();
  if (spanContext && isSpanContextValid(spanContext)) {
    fields.traceId = spanContext.traceId;
    fields.spanId = spanContext.spanId;
  }
  return fields;
}

/** A loop rather than entries/filter/fromEntries: this runs once per HTTP request. */
function defined(fields: LogContext): LogContext {
  const out: Record<string, string> = {};
  for (const key in fields) {
    const value = fields[key as keyof LogContext];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
