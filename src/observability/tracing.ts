/**
 * Starts OpenTelemetry tracing before anything else loads: the HTTP, pg and ioredis
 * instrumentations patch those modules when they are first required, so this file must be the
 * first import of main.ts, and it (with ./tracing-sdk.ts) must not import Nest, TypeORM, Bull or
 * the app's modules.
 *
 * Tracing is on when an OTLP endpoint is configured (src/config/telemetry-config.ts); otherwise no
 * SDK starts, no propagator is registered and the trace-context helpers carry nothing.
 */
import pino from 'pino';
import { ConfigError } from '../config/app-config';
import { loadTelemetryConfig } from '../config/telemetry-config';
import { startTracing } from './tracing-sdk';

try {
  startTracing(loadTelemetryConfig());
} catch (err) {
  // Same behaviour as a bad application variable: name it and stop before anything starts.
  const log = pino();
  if (err instanceof ConfigError) log.fatal(err.message);
  else log.fatal({ err }, 'tracing failed to start');
  process.exit(1);
}
