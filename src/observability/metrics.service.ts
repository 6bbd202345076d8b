import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { ProviderRegistry } from '../providers/provider-registry';
import { SlotsRepository } from '../slots/slots.repository';

/**
 * Prometheus metrics. Gauges of shared state (slots, queue depth) are read from Postgres at scrape
 * time, so every replica reports the same truth and sums across replicas are not needed.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  constructor(
    private readonly slots: SlotsRepository,
    private readonly providers: ProviderRegistry,
  ) {
    collectDefaultMetrics({ register: this.registry });
    const labelNames = ['provider'] as const;
    const gauges = {
      limit: new Gauge({
        name: 'voice_slots_limit',
        help: 'Slot limit per provider account',
        labelNames,
        registers: [this.registry],
      }),
      held: new Gauge({
        name: 'voice_slots_held',
        help: 'Slots held by the service',
        labelNames,
        registers: [this.registry],
      }),
      free: new Gauge({
        name: 'voice_slots_free',
        help: 'Free slots',
        labelNames,
        registers: [this.registry],
      }),
      foreign: new Gauge({
        name: 'voice_slots_foreign',
        help: 'Voices on the account not created by the service',
        labelNames,
        registers: [this.registry],
      }),
      queued: new Gauge({
        name: 'voice_queue_depth',
        help: 'Voices waiting for a slot',
        labelNames,
        registers: [this.registry],
      }),
      oldest: new Gauge({
        name: 'voice_queue_oldest_wait_seconds',
        help: 'Wait of the oldest queued voice',
        labelNames,
        registers: [this.registry],
      }),
    };
    this.refresh = async () => {
      for (const provider of this.providers.enabled()) {
        const c = await this.slots.capacity(provider);
        gauges.limit.set({ provider }, c.limit);
        gauges.held.set({ provider }, c.held);
        gauges.free.set({ provider }, c.free);
        gauges.foreign.set({ provider }, c.foreign);
        gauges.queued.set({ provider }, c.queued);
        gauges.oldest.set({ provider }, c.oldestQueuedSeconds ?? 0);
      }
    };
  }

  private readonly refresh: () => Promise<void>;

  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }
}
