import { startSandbox, type SandboxHandle } from '../src/providers/sandbox/sandbox-server';
import { ApiClient } from './support/api';
import { queriedMetrics } from './support/monitoring';
import { OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver';
import { lintMetrics, parseMetrics, sampleValue } from './support/prometheus';
import { ServiceProcess, TestWorld } from './support/service';

// OTLP span kinds.
const INTERNAL = 1;
const SERVER = 2;
const CLIENT = 3;

/**
 * What an operator relies on, against the built service: one upload followed from its HTTP request
 * to the provider's clone call in one trace (received by an OTLP/HTTP endpoint like a collector),
 * log lines that name the job, the voice and the trace, and a /metrics scrape that promtool
 * accepts and that shows the allocation in the right series.
 */
describe('observability end to end', () => {
  const world = new TestWorld();
  const receiver = new OtlpReceiver();
  let sandbox: SandboxHandle;
  let service: ServiceProcess;
  let alice: ApiClient;
  let voiceId: string;

  beforeAll(async () => {
    await receiver.start();
    sandbox = await startSandbox({ port: 0, voiceLimit: { elevenlabs: 5, cartesia: 5 } });
    service = await world.start({
      ELEVENLABS_BASE_URL: sandbox.baseUrl('elevenlabs'),
      ELEVENLABS_API_KEY: 'test-eleven-key',
      CARTESIA_BASE_URL: sandbox.baseUrl('cartesia'),
      CARTESIA_API_KEY: 'test-cartesia-key',
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'voice-slots-under-test',
      // Export within a fraction of a second instead of the default 5 s batches.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    alice = new ApiClient(service.url, 'alice');
    const res = await alice.upload({ name: 'Grandma', provider: 'elevenlabs' });
    expect(res.status).toBe(202);
    voiceId = res.body.id;
    expect((await alice.waitFor(voiceId, ['ready', 'failed'])).status).toBe('ready');
  });

  afterAll(async () => {
    await world.dispose();
    await sandbox?.close();
    await receiver.close();
  });

  it('links the upload request to the provider clone call in one trace', async () => {
    const { upload, clone } = await receiver.waitFor((spans) => {
      const clone = spans.find(
        (s) => s.name === 'provider.createVoice' && s.attributes['voice.id'] === voiceId,
      );
      const upload = spans.find(
        (s) => s.kind === SERVER && s.name === 'POST /v1/voices' && s.traceId === clone?.traceId,
      );
      return clone && upload ? { upload, clone } : undefined;
    });

    expect(upload.attributes).toMatchObject({
      'http.route': '/v1/voices',
      'http.response.status_code': 202,
    });
    expect(upload.serviceName).toBe('voice-slots-under-test');
    expect(clone.attributes).toMatchObject({ 'provider.name': 'elevenlabs', 'voice.id': voiceId });
    // In between: the metadata and allocation jobs, as consumer spans of the same trace.
    const trace = receiver.spans.filter((s) => s.traceId === upload.traceId);
    const names = trace.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining(['job extract-metadata', 'job allocate', 'storage.put']),
    );
    const parentOf = (s: ReceivedSpan) => trace.find((p) => p.spanId === s.parentSpanId);
    expect(parentOf(clone)?.name).toBe('job allocate');
    // Under the logical call, the HTTP request itself (undici), as a semconv client span.
    const cloneUrl = `${sandbox.baseUrl('elevenlabs')}/v1/voices/add`;
    const http = await receiver.waitFor((spans) =>
      spans.find((s) => s.parentSpanId === clone.spanId && s.kind === CLIENT),
    );
    expect(clone.kind).toBe(INTERNAL);
    expect(http.attributes).toMatchObject({
      'http.request.method': 'POST',
      'url.full': cloneUrl,
      'http.response.status_code': 200,
      'server.address': new URL(cloneUrl).hostname,
    });
  });

  it('writes log lines that name the job, the voice, its user and provider, and the trace', async () => {
    const lines = service.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const ready = lines.find((l) => l.msg === 'voice ready' && l.voiceId === voiceId);
    const { clone } = await receiver.waitFor((spans) => {
      const clone = spans.find(
        (s) => s.name === 'provider.createVoice' && s.attributes['voice.id'] === voiceId,
      );
      return clone ? { clone } : undefined;
    });
    expect(ready).toMatchObject({
      jobId: expect.stringContaining(voiceId),
      queue: 'allocation-elevenlabs',
      userId: 'alice',
      provider: 'elevenlabs',
      traceId: clone.traceId,
    });
    // The request's own line has its request id; the bearer token never reaches the logs.
    const request = lines.find(
      (l) => l.msg === 'request completed' && (l.req as { url?: string })?.url === '/v1/voices',
    );
    expect(request?.reqId).toEqual(expect.any(String));
    expect(service.output).not.toContain(alice.token);
    // Probes and scrapes stay out of the request log.
    expect(
      lines.some((l) => (l.req as { url?: string } | undefined)?.url === '/health/ready'),
    ).toBe(false);
  });

  it('serves /metrics that promtool accepts, with the allocation in the right series', async () => {
    const res = await fetch(`${service.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(lintMetrics(text).problems).toEqual([]);

    const s = parseMetrics(text);
    const el = { provider: 'elevenlabs' };
    expect(
      sampleValue(s, 'voice_slots_allocation_attempts_total', { ...el, result: 'remote_created' }),
    ).toBe(1);
    expect(sampleValue(s, 'voice_slots_allocation_duration_seconds_count', el)).toBe(1);
    expect(sampleValue(s, 'voice_slots_time_to_ready_seconds_count', el)).toBe(1);
    expect(
      sampleValue(s, 'voice_slots_provider_requests_total', {
        ...el,
        operation: 'createVoice',
        outcome: 'ok',
      }),
    ).toBe(1);
    expect(
      sampleValue(s, 'voice_slots_provider_request_duration_seconds_count', {
        ...el,
        operation: 'createVoice',
      }),
    ).toBe(1);
    expect(sampleValue(s, 'voice_slots_held', el)).toBe(1);
    expect(sampleValue(s, 'voice_slots_free', el)).toBe(4);
    expect(sampleValue(s, 'voice_slots_voices', { ...el, status: 'ready' })).toBe(1);
    expect(sampleValue(s, 'voice_slots_queue_depth', el)).toBe(0);
    expect(sampleValue(s, 'voice_slots_provider_breaker_state', { ...el, state: 'closed' })).toBe(
      1,
    );
    expect(
      sampleValue(s, 'voice_slots_queue_jobs', { queue: 'allocation-elevenlabs', state: 'failed' }),
    ).toBe(0);
    // Routes, not raw URLs: the voice id is not a label value.
    expect(
      sampleValue(s, 'voice_slots_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/voices',
        status: '202',
      }),
    ).toBe(1);
    expect(
      sampleValue(s, 'voice_slots_http_request_duration_seconds_count', {
        method: 'GET',
        route: '/v1/voices/:id',
        status: '200',
      }),
    ).toBeGreaterThan(0);
    expect(text).not.toContain(voiceId);
  });

  it('exports every metric that the alerts and the Grafana dashboard query', async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    // Declared metrics (# TYPE) count even before their first sample: counters of rare events.
    const exported = new Set(
      [...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap(([, name, type]) =>
        type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name],
      ),
    );
    expect(queriedMetrics().filter((m) => !exported.has(m))).toEqual([]);
  });

  it('stays ready with an open provider breaker, and shows the breaker on /metrics', async () => {
    await world.db((c) =>
      c.query(
        `UPDATE providers SET breaker_state = 'open', breaker_opened_at = now() WHERE name = 'cartesia'`,
      ),
    );
    const ready = await fetch(`${service.url}/health/ready`);
    expect(ready.status).toBe(200);
    // All roles run here: Postgres, Redis, sample storage and every queue the worker serves.
    const checks = ((await ready.json()) as { info: Record<string, { status: string }> }).info;
    expect(Object.keys(checks).sort()).toEqual(
      ['cartesia', 'elevenlabs', 'maintenance']
        .map((q) => `queue_${q}`)
        .concat(['database', 'redis', 'storage'])
        .sort(),
    );
    const s = parseMetrics(await (await fetch(`${service.url}/metrics`)).text());
    expect(
      sampleValue(s, 'voice_slots_provider_breaker_state', { provider: 'cartesia', state: 'open' }),
    ).toBe(1);
    expect(
      sampleValue(s, 'voice_slots_provider_breaker_state', {
        provider: 'cartesia',
        state: 'closed',
      }),
    ).toBe(0);
  });
});
