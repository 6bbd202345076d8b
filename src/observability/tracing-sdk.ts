/**
 * The OpenTelemetry SDK of the service: traces exported as the OTEL_* variables say (the SDK reads
 * them: OTLP over http/protobuf, http/json or gRPC), instrumentations for incoming HTTP, outgoing
 * undici requests (the provider calls), pg and ioredis, W3C propagation. Started by ./tracing.ts,
 * which main.ts imports first.
 */
import type { IncomingMessage } from 'node:http';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { TelemetryConfig } from '../config/telemetry-config';
import { isQuietPath } from './logging';

let sdk: NodeSDK | null = null;

/** Starts the SDK for a tracing configuration; returns false when tracing is off. */
export function startTracing(config: TelemetryConfig): boolean {
  if (sdk) return true;
  if (!config.tracing) return false;
  sdk = new NodeSDK({
    serviceName: config.serviceName,
    // No traceExporter: the SDK builds the one OTEL_TRACES_EXPORTER and the protocol name.
    // Traces only: metrics are scraped from /metrics, logs go to stdout.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new HttpInstrumentation({
        // Probes and scrapes would bury the real traffic, as in the request logs.
        ignoreIncomingRequestHook: (req: IncomingMessage) => isQuietPath(req.url ?? ''),
      }),
      // The provider adapters call undici's request(), which the http instrumentation does not
      // see: each call becomes a semconv HTTP client span under the logical provider span.
      // Only inside a trace, like pg and ioredis: Bull polls Redis and the scheduler queries
      // Postgres all the time, and thousands of parentless spans would say nothing.
      new UndiciInstrumentation({ requireParentforSpans: true }),
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  return true;
}

/** Flushes the spans still buffered and stops the SDK (on application shutdown). */
export async function shutdownTracing(): Promise<void> {
  const running = sdk;
  sdk = null;
  await running?.shutdown();
}
