import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { PROVIDER_NAMES, type ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import { CartesiaProvider } from './cartesia.provider';
import { ElevenLabsProvider } from './elevenlabs.provider';
import { InstrumentedProvider, type ProviderCallObserver } from './instrumented-provider';
import { startSandbox, type SandboxHandle } from './sandbox/sandbox-server';
import { VoiceProvider } from './voice-provider.port';

/**
 * Builds one adapter per enabled provider from plain configuration. Providers without an API key
 * are served by the in-process sandbox (outside production, or when PROVIDER_SANDBOX=on).
 */
@Injectable()
export class ProviderRegistry implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(ProviderRegistry.name);
  private readonly adapters = new Map<ProviderName, VoiceProvider>();
  private sandbox: SandboxHandle | null = null;
  private observer: ProviderCallObserver | null = null;

  constructor(private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    const needsSandbox = PROVIDER_NAMES.some((p) => this.config.providers[p].sandbox);
    if (needsSandbox) {
      this.sandbox = await startSandbox({
        port: this.config.SANDBOX_PORT,
        latencyMs: this.config.SANDBOX_LATENCY_MS,
        voiceLimit: { elevenlabs: this.config.SANDBOX_VOICE_LIMIT },
        cloneBudget: {
          limit: this.config.SANDBOX_CLONE_BUDGET,
          periodSeconds: this.config.SANDBOX_CLONE_BUDGET_PERIOD_SECONDS,
        },
      });
      this.logger.log({ url: this.sandbox.url }, 'provider sandbox serving key-less providers');
    }
    for (const name of PROVIDER_NAMES) {
      const settings = this.config.providers[name];
      const baseUrl =
        settings.sandbox && this.sandbox ? this.sandbox.baseUrl(name) : settings.baseUrl;
      if (!baseUrl) continue;
      const apiKey = settings.apiKey ?? (settings.sandbox ? 'sandbox' : undefined);
      const adapter =
        name === 'elevenlabs'
          ? new ElevenLabsProvider({ baseUrl, apiKey })
          : new CartesiaProvider({ baseUrl, apiKey, version: this.config.CARTESIA_VERSION });
      // Every call gets a span and reaches the observer, whenever that registers.
      this.adapters.set(
        name,
        new InstrumentedProvider(adapter, { onCall: (call) => this.observer?.onCall(call) }),
      );
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.sandbox?.close();
  }

  /** Registers the one observer of provider calls (metrics); replaces any earlier one. */
  setObserver(observer: ProviderCallObserver): void {
    this.observer = observer;
  }

  enabled(): ProviderName[] {
    return [...this.adapters.keys()];
  }

  get(name: ProviderName): VoiceProvider {
    const adapter = this.adapters.get(name);
    if (!adapter) throw new Error(`provider ${name} is not enabled`);
    return adapter;
  }

  has(name: ProviderName): boolean {
    return this.adapters.has(name);
  }

  /** The sandbox's address when it runs in this process (for logs and the README's walkthrough). */
  sandboxUrl(): string | null {
    return this.sandbox?.url ?? null;
  }
}
