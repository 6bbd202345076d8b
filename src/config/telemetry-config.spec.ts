import { ConfigError } from './app-config';
import { loadTelemetryConfig } from './telemetry-config';

describe('loadTelemetryConfig', () => {
  it('leaves tracing off without an OTLP endpoint', () => {
    expect(loadTelemetryConfig({})).toEqual({ tracing: false });
    expect(loadTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toEqual({ tracing: false });
  });

  it('exports to <endpoint>/v1/traces with the spec defaults', () => {
    expect(loadTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toEqual({
      tracing: true,
      serviceName: 'voice-slots',
      tracesUrl: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      headers: {},
    });
  });

  it('prefers the traces-specific variables', () => {
    const config = loadTelemetryConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://tempo:4318/custom/traces',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-team=voices,authorization=Basic%20abc',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-team=slots',
      OTEL_SERVICE_NAME: 'voice-slots-eu',
    });
    expect(config).toEqual({
      tracing: true,
      serviceName: 'voice-slots-eu',
      tracesUrl: 'http://tempo:4318/custom/traces',
      protocol: 'http/json',
      headers: { 'x-team': 'slots', authorization: 'Basic abc' },
    });
  });

  it('stays off when the SDK or the traces exporter is switched off', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(loadTelemetryConfig({ ...endpoint, OTEL_SDK_DISABLED: 'true' }).tracing).toBe(false);
    expect(loadTelemetryConfig({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).tracing).toBe(false);
  });

  it('names every bad variable, and refuses gRPC (no gRPC exporter is installed)', () => {
    let message = '';
    try {
      loadTelemetryConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'carrier-pigeon',
        OTEL_EXPORTER_OTLP_HEADERS: 'novalue',
      });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    for (const name of [
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'OTEL_EXPORTER_OTLP_PROTOCOL',
      'OTEL_EXPORTER_OTLP_HEADERS',
    ])
      expect(message).toContain(name);
    expect(() =>
      loadTelemetryConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      }),
    ).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not supported/);
  });
});
