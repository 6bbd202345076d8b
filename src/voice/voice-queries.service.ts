import { Injectable } from '@nestjs/common';
import type { ProviderName } from '../config/app-config';
import { AppConfig } from '../config/config.module';
import {
  queueInfoOptions,
  QueuePositionRepository,
  type QueueInfo,
} from './queue-position.repository';
import type { Voice } from './voice';
import { decodeCursor, encodeCursor } from './voice-cursor';
import { voiceNotFound } from './voice-errors';
import type { VoiceStatus } from './voice-status';
import { VoiceRepository } from './voice.repository';

export interface VoiceView {
  voice: Voice;
  queue: QueueInfo | null;
}

/** Reads of voices for their users: one voice with its place in the queue, a page of a list. */
@Injectable()
export class VoiceQueriesService {
  constructor(
    private readonly config: AppConfig,
    private readonly voices: VoiceRepository,
    private readonly positions: QueuePositionRepository,
  ) {}

  async get(userId: string | undefined, id: string): Promise<VoiceView> {
    const voice = await this.voices.findById(id, userId);
    if (!voice) throw voiceNotFound();
    return {
      voice,
      queue: await this.positions.queuePosition(voice, queueInfoOptions(this.config)),
    };
  }

  async list(query: {
    userId?: string;
    status?: VoiceStatus;
    provider?: ProviderName;
    limit: number;
    cursor?: string;
  }): Promise<{ items: Voice[]; nextCursor: string | null }> {
    const after = query.cursor ? decodeCursor(query.cursor) : undefined;
    const items = await this.voices.list({ ...query, after, limit: query.limit + 1 });
    const more = items.length > query.limit;
    const page = items.slice(0, query.limit);
    const last = page[page.length - 1];
    return { items: page, nextCursor: more && last ? encodeCursor(last) : null };
  }
}
