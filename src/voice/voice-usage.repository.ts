import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { SETTABLE, usageSet, type Settable } from './voice-sql';

/** The batched writes of ready voices' use (LastUseRecorder), off the activation's hot path. */
@Injectable()
export class VoiceUsageRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Batched last-use times; never moves a time backwards. */
  async recordLastUse(ids: string[], at: Date[]): Promise<void> {
    await this.ds.query(
      `UPDATE voices v SET last_used_at = GREATEST(v.last_used_at, x.at),
              ${Object.entries(usageSet('x.at'))
                .map(([k, v]) => `${SETTABLE[k as Settable]} = ${v.text}`)
                .join(', ')}
         FROM unnest($1::uuid[], $2::timestamptz[]) AS x(id, at) WHERE v.id = x.id`,
      [ids, at],
    );
  }
}
