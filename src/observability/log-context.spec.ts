import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import pino from 'pino';
import { addLogContext, logMixin, runWithLogContext } from './log-context';

/** A pino logger configured like the service's, writing its lines into an array. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, log: pino({ mixin: logMixin }, stream) };
}

describe('log context', () => {
  const sdk = new NodeSDK({
    spanProcessors: [new SimpleSpanProcessor({ exporter: new InMemorySpanExporter() })],
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
    resourceDetectors: [],
  });
  beforeAll(() => sdk.start());
  afterAll(() => sdk.shutdown());

  it('puts the job, the voice and what was learnt later on every line of the job', async () => {
    const { lines, log } = capture();
    await runWithLogContext({ jobId: 'job-1', queue: 'metadata', voiceId: 'v-1' }, async () => {
      await Promise.resolve();
      addLogContext({ userId: 'alice', provider: 'cartesia' });
      log.info('voice queued');
    });
    log.info('outside');

    expect(lines[0]).toMatchObject({
      jobId: 'job-1',
      queue: 'metadata',
      voiceId: 'v-1',
      userId: 'alice',
      provider: 'cartesia',
      msg: 'voice queued',
    });
    expect(lines[1]).not.toHaveProperty('jobId');
  });

  it("adds the active span's trace and span ids, and lets the call's own fields win", () => {
    const { lines, log } = capture();
    const ids = trace.getTracer('test').startActiveSpan('work', (span) => {
      runWithLogContext({ voiceId: 'from-context' }, () => log.info({ voiceId: 'explicit' }, 'x'));
      span.end();
      return span.spanContext();
    });
    expect(lines[0]).toMatchObject({
      traceId: ids.traceId,
      spanId: ids.spanId,
      voiceId: 'explicit',
    });
  });
});
