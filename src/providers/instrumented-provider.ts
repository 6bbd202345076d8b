import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { ProviderName } from '../config/app-config';
import { ProviderError, type ProviderErrorClass } from './provider-error';
import {
  VoiceProvider,
  type AccountLimits,
  type CreateVoiceRequest,
  type RemoteVoice,
  type RemoteVoicePage,
} from './voice-provider.port';

export type ProviderOperation =
  | 'createVoice'
  | 'deleteVoice'
  | 'getVoice'
  | 'listVoices'
  | 'findByIdempotencyKey'
  | 'getAccountLimits';

/** `ok`, the class of a ProviderError, or `error` for anything else (a bug, not the provider). */
export type ProviderCallOutcome = 'ok' | ProviderErrorClass | 'error';

export interface ProviderCall {
  provider: ProviderName;
  operation: ProviderOperation;
  outcome: ProviderCallOutcome;
  /** The ProviderError's code when the call failed with one. */
  errorCode: string | null;
  durationSeconds: number;
}

/**
 * Told about every provider call (metrics count them). A plain callback rather than an import, so
 * the providers do not depend on observability. Must not throw.
 */
export interface ProviderCallObserver {
  onCall(call: ProviderCall): void;
}

const tracer = trace.getTracer('voice-slots');

/**
 * Decorates an adapter with a span and an observer callback per call (`provider.createVoice`
 * etc., with `provider.name`, `voice.id` where the call is about one of our voices, and
 * `error.code` on failure). Behaviour is the wrapped adapter's, errors included.
 */
export class InstrumentedProvider extends VoiceProvider {
  readonly name: ProviderName;

  constructor(
    private readonly inner: VoiceProvider,
    private readonly observer: ProviderCallObserver,
  ) {
    super();
    this.name = inner.name;
  }

  createVoice(request: CreateVoiceRequest): Promise<{ remoteVoiceId: string }> {
    return this.call(
      'createVoice',
      { 'voice.id': request.idempotencyKey },
      () => this.inner.createVoice(request),
      (result, span) => span.setAttribute('provider.remote_voice_id', result.remoteVoiceId),
    );
  }

  deleteVoice(remoteVoiceId: string): Promise<void> {
    return this.call('deleteVoice', { 'provider.remote_voice_id': remoteVoiceId }, () =>
      this.inner.deleteVoice(remoteVoiceId),
    );
  }

  getVoice(remoteVoiceId: string): Promise<RemoteVoice | null> {
    return this.call('getVoice', { 'provider.remote_voice_id': remoteVoiceId }, () =>
      this.inner.getVoice(remoteVoiceId),
    );
  }

  listVoices(cursor?: string | null): Promise<RemoteVoicePage> {
    return this.call('listVoices', {}, () => this.inner.listVoices(cursor));
  }

  findByIdempotencyKey(idempotencyKey: string): Promise<RemoteVoice | null> {
    return this.call(
      'findByIdempotencyKey',
      { 'voice.id': idempotencyKey },
      () => this.inner.findByIdempotencyKey(idempotencyKey),
      (found, span) => span.setAttribute('provider.voice_found', found !== null),
    );
  }

  getAccountLimits(): Promise<AccountLimits> {
    return this.call('getAccountLimits', {}, () => this.inner.getAccountLimits());
  }

  private call<T>(
    operation: ProviderOperation,
    attributes: Attributes,
    fn: () => Promise<T>,
    onResult?: (result: T, span: Span) => void,
  ): Promise<T> {
    return tracer.startActiveSpan(
      `provider.${operation}`,
      { kind: SpanKind.INTERNAL, attributes: { 'provider.name': this.name, ...attributes } },
      async (span) => {
        const started = performance.now();
        let outcome: ProviderCallOutcome = 'ok';
        let errorCode: string | null = null;
        try {
          const result = await fn();
          onResult?.(result, span);
          return result;
        } catch (err) {
          outcome = err instanceof ProviderError ? err.errorClass : 'error';
          errorCode = err instanceof ProviderError ? err.code : null;
          span.setAttribute('error.type', err instanceof Error ? err.name : 'unknown');
          if (errorCode) span.setAttribute('error.code', errorCode);
          if (err instanceof Error) span.recordException(err);
          span.setStatus({ code: SpanStatusCode.ERROR, message: errorCode ?? outcome });
          throw err;
        } finally {
          span.end();
          const durationSeconds = (performance.now() - started) / 1000;
          try {
            this.observer.onCall({
              provider: this.name,
              operation,
              outcome,
              errorCode,
              durationSeconds,
            });
          } catch {
            // Metrics must never change what a provider call returns.
          }
        }
      },
    );
  }
}
