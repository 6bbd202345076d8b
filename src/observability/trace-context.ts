import { context, propagation } from '@opentelemetry/api';

export type TraceCarrier = Record<string, string>;

/**
 * The active trace context as plain strings (W3C traceparent), to travel inside Bull job data so
 * a voice's allocation trace continues its upload request's trace. Empty when tracing is off.
 */
export function currentTraceCarrier(): TraceCarrier | undefined {
  const carrier: TraceCarrier = {};
  propagation.inject(context.active(), carrier);
  return Object.keys(carrier).length ? carrier : undefined;
}

/** Runs `fn` inside the trace context a job carried. */
export function withTraceCarrier<T>(carrier: TraceCarrier | undefined, fn: () => T): T {
  if (!carrier) return fn();
  return context.with(propagation.extract(context.active(), carrier), fn);
}
