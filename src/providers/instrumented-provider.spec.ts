import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { currentTraceCarrier, withTraceCarrier } from '../observability/trace-context';
import { InstrumentedProvider, type ProviderCall } from './instrumented-provider';
import { ProviderError } from './provider-error';
import { memorySample } from './testing/stub-server';
import {
  VoiceProvider,
  type AccountLimits,
  type CreateVoiceRequest,
  type RemoteVoice,
  type RemoteVoicePage,
} from './voice-provider.port';

/** An adapter that answers what the test tells it to. */
class FakeProvider extends VoiceProvider {
  readonly name = 'elevenlabs' as const;
  next: () => Promise<{ remoteVoiceId: string }> = () => Promise.resolve({ remoteVoiceId: 'r-1' });
  createVoice(_request: CreateVoiceRequest) {
    return this.next();
  }
  deleteVoice(): Promise<void> {
    return Promise.resolve();
  }
  getVoice(): Promise<RemoteVoice | null> {
    return Promise.resolve(null);
  }
  listVoices(): Promise<RemoteVoicePage> {
    return Promise.resolve({ voices: [], nextCursor: null });
  }
  findByIdempotencyKey(): Promise<RemoteVoice | null> {
    return Promise.resolve(null);
  }
  getAccountLimits(): Promise<AccountLimits> {
    return Promise.resolve({ voiceLimit: 10, voiceSlotsUsed: 0, cloneBudget: null });
  }
}

const request = (key: string): CreateVoiceRequest => ({
  name: 'Grandma',
  idempotencyKey: key,
  sample: memorySample(Buffer.from('RIFF')),
});

describe('InstrumentedProvider', () => {
  const exporter = new InMemorySpanExporter();
  const sdk = new NodeSDK({
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
    resourceDetectors: [],
  });
  let inner: FakeProvider;
  let calls: ProviderCall[];
  let provider: InstrumentedProvider;

  beforeAll(() => sdk.start());
  afterAll(() => sdk.shutdown());
  beforeEach(() => {
    exporter.reset();
    inner = new FakeProvider();
    calls = [];
    provider = new InstrumentedProvider(inner, { onCall: (c) => calls.push(c) });
  });

  const spanNamed = (name: string) => {
    const span = exporter.getFinishedSpans().find((s) => s.name === name);
    if (!span) throw new Error(`no span ${name}`);
    return span;
  };

  it('records a clone as a client span named after the call, with the voice id', async () => {
    await expect(provider.createVoice(request('voice-1'))).resolves.toEqual({
      remoteVoiceId: 'r-1',
    });

    const span = spanNamed('provider.createVoice');
    expect(span.kind).toBe(SpanKind.INTERNAL);
    expect(span.attributes).toMatchObject({
      'provider.name': 'elevenlabs',
      'voice.id': 'voice-1',
      'provider.remote_voice_id': 'r-1',
    });
    expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(calls).toEqual([
      expect.objectContaining({
        provider: 'elevenlabs',
        operation: 'createVoice',
        outcome: 'ok',
        errorCode: null,
      }),
    ]);
  });

  it("marks a failed call with the provider's error code and rethrows the same error", async () => {
    const failure = new ProviderError('elevenlabs', 'retryable', 'http_503', 'unavailable', 503);
    inner.next = () => Promise.reject(failure);

    await expect(provider.createVoice(request('voice-2'))).rejects.toBe(failure);

    const span = spanNamed('provider.createVoice');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['error.code']).toBe('http_503');
    expect(calls[0]).toMatchObject({ outcome: 'retryable', errorCode: 'http_503' });
  });

  it('counts an error that is no ProviderError as `error`', async () => {
    inner.next = () => Promise.reject(new TypeError('bug'));
    await expect(provider.createVoice(request('voice-3'))).rejects.toThrow('bug');
    expect(calls[0].outcome).toBe('error');
  });

  it('continues the trace a job carried from the upload request', async () => {
    // The upload request: its context travels as a W3C carrier (stored per voice, put in the job).
    const tracer = trace.getTracer('test');
    const { carrier, upload } = tracer.startActiveSpan('POST /v1/voices', (span) => {
      const c = currentTraceCarrier();
      span.end();
      return { carrier: c, upload: span.spanContext() };
    });
    expect(carrier?.traceparent).toContain(upload.traceId);

    // Later, in a worker: the allocation job runs inside the carried context.
    await withTraceCarrier(carrier, () => provider.createVoice(request('voice-4')));

    const clone = spanNamed('provider.createVoice');
    expect(clone.spanContext().traceId).toBe(upload.traceId);
    expect(clone.parentSpanContext?.spanId).toBe(upload.spanId);
  });

  it('never lets a failing observer change what the call returns', async () => {
    provider = new InstrumentedProvider(inner, {
      onCall: () => {
        throw new Error('metrics broke');
      },
    });
    await expect(provider.getAccountLimits()).resolves.toEqual({
      voiceLimit: 10,
      voiceSlotsUsed: 0,
      cloneBudget: null,
    });
    expect(spanNamed('provider.getAccountLimits').attributes['provider.name']).toBe('elevenlabs');
  });
});
