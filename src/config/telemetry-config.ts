import { z } from 'zod';
import { ConfigError } from './app-config';

/** An unset variable and an empty one mean the same: the default (as the OpenTelemetry spec says). */
const blankIsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optional = <T extends z.ZodType>(type: T) => z.preprocess(blankIsUnset, type.optional());

const PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const;
export type OtlpProtocol = Exclude<(typeof PROTOCOLS)[number], 'grpc'>;

/** `key=value,key2=value2`, values percent-encoded (W3C baggage style, as the spec defines it). */
const headerList = z.string().transform((s, ctx) => {
  const headers: Record<string, string> = {};
  for (const pair of s.split(',')) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq).trim() : '';
    if (!key) {
      ctx.addIssue({ code: 'custom', message: 'expected key=value pairs separated by commas' });
      return z.NEVER;
    }
    try {
      headers[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      ctx.addIssue({ code: 'custom', message: `the value of ${key} is not percent-encoded` });
      return z.NEVER;
    }
  }
  return headers;
});

/** The standard OTEL_* variables this service reads itself; the SDK reads the rest (sampler, batching). */
const schema = z.object({
  OTEL_SDK_DISABLED: optional(z.stringbool()),
  OTEL_SERVICE_NAME: optional(z.string()),
  OTEL_TRACES_EXPORTER: optional(z.enum(['otlp', 'none'])),
  OTEL_EXPORTER_OTLP_ENDPOINT: optional(z.url()),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optional(z.url()),
  OTEL_EXPORTER_OTLP_PROTOCOL: optional(z.enum(PROTOCOLS)),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: optional(z.enum(PROTOCOLS)),
  OTEL_EXPORTER_OTLP_HEADERS: optional(headerList),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: optional(headerList),
});

export type TelemetryConfig =
  | { tracing: false }
  | {
      tracing: true;
      serviceName: string;
      /** Where spans are POSTed: the traces endpoint as given, or the base endpoint + /v1/traces. */
      tracesUrl: string;
      protocol: OtlpProtocol;
      headers: Record<string, string>;
    };

/**
 * Tracing is on when an OTLP endpoint is set (and not switched off by OTEL_SDK_DISABLED or
 * OTEL_TRACES_EXPORTER=none); otherwise no SDK starts and tracing costs nothing. Throws a
 * ConfigError naming every bad variable, like the application's configuration.
 */
export function loadTelemetryConfig(env: NodeJS.ProcessEnv = process.env): TelemetryConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const tracesUrl =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (e.OTEL_EXPORTER_OTLP_ENDPOINT &&
      `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`);
  if (!tracesUrl || e.OTEL_SDK_DISABLED || e.OTEL_TRACES_EXPORTER === 'none') {
    return { tracing: false };
  }
  // The spec's default is http/protobuf; both HTTP encodings are served on the collector's :4318.
  const protocol =
    e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  if (protocol === 'grpc') {
    const name = e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
      ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
      : 'OTEL_EXPORTER_OTLP_PROTOCOL';
    throw new ConfigError(
      `Invalid configuration:\n  ${name}: grpc is not supported; use http/protobuf or http/json`,
    );
  }
  return {
    tracing: true,
    serviceName: e.OTEL_SERVICE_NAME ?? 'voice-slots',
    tracesUrl,
    protocol,
    headers: { ...e.OTEL_EXPORTER_OTLP_HEADERS, ...e.OTEL_EXPORTER_OTLP_TRACES_HEADERS },
  };
}
