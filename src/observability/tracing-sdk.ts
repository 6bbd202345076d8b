/**
 * The OpenTelemetry SDK of the service: OTLP exporter, HTTP/pg/ioredis instrumentations, W3C
 * propagation. Started by ./tracing.ts, which main.ts imports first.
 */
import type { IncomingMessage } from 'node:http';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { TelemetryConfig } from '../config/telemetry-config';
import { isQuietPath } from './logging';

let sdk: NodeSDK | null = null;

/** Starts the SDK for a tracing configuration; returns false when tracing is off. */
export function startTracing(config: TelemetryConfig): boolean {
  if (sdk) return true;
  if (!config.tracing) return false;
  const exporterOptions = { url: config.tracesUrl, headers: config.headers };
  sdk = new NodeSDK({
    serviceName: config.serviceName,
    traceExporter:
      config.protocol === 'http/json'
        ? new OtlpJsonExporter(exporterOptions)
        : new OtlpProtobufExporter(exporterOptions),
    // Traces only: metrics are scraped from /metrics, logs go to stdout.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new HttpInstrumentation({
        // Probes and scrapes would bury the real traffic, as in the request logs.
        ignoreIncomingRequestHook: (req: IncomingMessage) => isQuietPath(req.url ?? ''),
      }),
      // Only inside a trace: Bull polls Redis and the scheduler queries Postgres all the time,
      // and thousands of parentless spans would say nothing.
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
