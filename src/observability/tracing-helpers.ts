import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

/** The tracer of the service's own spans (instrumentations have theirs). */
const tracer = trace.getTracer('voice-slots');

/**
 * Runs `fn` inside a span named `name`, ended when `fn` settles; a throw marks the span as an
 * error (with `error.code` when the error has a string `code`) and is rethrown unchanged. With
 * tracing off the span is a no-op and this costs next to nothing.
 */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      markError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Records a failure on a span: status, exception event, and the error's stable code if any. */
function markError(span: Span, err: unknown): void {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') span.setAttribute('error.code', code);
  span.setAttribute('error.type', err instanceof Error ? err.name : 'unknown');
  if (err instanceof Error) span.recordException(err);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: err instanceof Error ? err.message : String(err),
  });
}
