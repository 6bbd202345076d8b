import { ConfigError } from './app-config';
import { loadTelemetryConfig } from './telemetry-config';

describe('loadTelemetryConfig', () => {
  it('leaves tracing off without an OTLP endpoint', () => {
    expect(loadTelemetryConfig({})).toEqual({ tracing: false });
    expect(loadTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toEqual({ tracing: false });
  });

  it('turns tracing on with either endpoint, named by OTEL_SERVICE_NAME or voice-slots', () => {
    expect(loadTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toEqual({
      tracing: true,
      serviceName: 'voice-slots',
    });
    expect(
      loadTelemetryConfig({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://tempo:4318/custom/traces',
        OTEL_SERVICE_NAME: 'voice-slots-eu',
      }),
    ).toEqual({ tracing: true, serviceName: 'voice-slots-eu' });
  });

  it('accepts each protocol the SDK exports with, gRPC included', () => {
    for (const protocol of ['http/protobuf', 'http/json', 'grpc'])
      expect(
        loadTelemetryConfig({
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        }).tracing,
      ).toBe(true);
  });

  it('stays off when the SDK or the traces exporter is switched off', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(loadTelemetryConfig({ ...endpoint, OTEL_SDK_DISABLED: 'true' }).tracing).toBe(false);
    expect(loadTelemetryConfig({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).tracing).toBe(false);
  });

  it('names every bad variable instead of letting the SDK fall back with a warning', () => {
    let message = '';
    try {
      loadTelemetryConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'carrier-pigeon',
        OTEL_TRACES_EXPORTER: 'jaeger-thrift',
      });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    for (const name of [
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
      'OTEL_TRACES_EXPORTER',
    ])
      expect(message).toContain(name);
  });
});
