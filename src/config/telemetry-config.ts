import { z } from 'zod';
import { ConfigError } from './app-config';

/** An unset variable and an empty one mean the same: the default (as the OpenTelemetry spec says). */
const blankIsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optional = <T extends z.ZodType>(type: T) => z.preprocess(blankIsUnset, type.optional());

/** The protocols the SDK's exporters speak (gRPC on the collector's :4317, both HTTP ones on :4318). */
const PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const;

/**
 * The standard OTEL_* variables checked here. The SDK reads them all itself (endpoints, protocol,
 * headers, sampler, batching); they are checked only so that a typo stops the process with the
 * variable named, like the application's configuration, instead of a warning and a fallback.
 */
const schema = z.object({
  OTEL_SDK_DISABLED: optional(z.stringbool()),
  OTEL_SERVICE_NAME: optional(z.string()),
  OTEL_TRACES_EXPORTER: optional(z.enum(['otlp', 'console', 'none'])),
  OTEL_EXPORTER_OTLP_ENDPOINT: optional(z.url()),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optional(z.url()),
  OTEL_EXPORTER_OTLP_PROTOCOL: optional(z.enum(PROTOCOLS)),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: optional(z.enum(PROTOCOLS)),
});

export type TelemetryConfig = { tracing: false } | { tracing: true; serviceName: string };

/**
 * Tracing is on when an OTLP endpoint is set (and not switched off by OTEL_SDK_DISABLED or
 * OTEL_TRACES_EXPORTER=none); otherwise no SDK starts and tracing costs nothing (the SDK alone
 * would export to localhost by default). Throws a ConfigError naming every bad variable.
 */
export function loadTelemetryConfig(env: NodeJS.ProcessEnv = process.env): TelemetryConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const endpoint = e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint || e.OTEL_SDK_DISABLED || e.OTEL_TRACES_EXPORTER === 'none') {
    return { tracing: false };
  }
  return { tracing: true, serviceName: e.OTEL_SERVICE_NAME ?? 'voice-slots' };
}
