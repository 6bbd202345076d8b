import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import type { ProviderName } from '../config/app-config';
import type { AudioInfo } from './audio-probe';
import { voiceFromRow, type Voice, type VoiceRow } from './voice';

export interface NewVoice {
  id: string;
  userId: string;
  name: string;
  provider: ProviderName;
  language: string | null;
  sampleKey: string;
  sampleContentType: string;
  sampleFilename: string;
  sampleSizeBytes: number;
  sampleSha256: string;
  /** What the upload's probe found: the metadata job validates it instead of probing again. */
  uploadProbe?: AudioInfo;
  traceContext?: Record<string, string>;
}

/**
 * Serialises a user's admissions (uploads, re-activations) and counts their waiting voices, so
 * concurrent requests cannot pass USER_MAX_PENDING together. Call inside a transaction.
 */
export async function lockUserAndCountWaiting(userId: string, em: EntityManager): Promise<number> {
  await em.query(`SELECT pg_advisory_xact_lock(hashtext('user-admission'), hashtext($1))`, [
    userId,
  ]);
  const rows: { n: number }[] = await em.query(
    `SELECT count(*)::int AS n FROM voices
      WHERE user_id = $1 AND status IN ('pending','queued','allocating')`,
    [userId],
  );
  return rows[0].n;
}

/** A new voice and the per-user admission it passes: its insert, the user's waiting count. */
@Injectable()
export class VoiceAdmissionRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  private q(em?: EntityManager) {
    return em ?? this.ds.manager;
  }

  async insertPending(v: NewVoice, em?: EntityManager): Promise<Voice> {
    const rows: VoiceRow[] = await this.q(em).query(
      `WITH v AS (
         INSERT INTO voices (id, user_id, name, provider, language, status, sample_key,
           sample_content_type, sample_filename, sample_size_bytes, sample_sha256, trace_context,
           upload_probe)
         VALUES ($1,$2,$3,$4,$5,'pending',$6,$7,$8,$9,$10,$11,$12) RETURNING *),
       e AS (INSERT INTO voice_events (voice_id, type, reason, to_status)
             SELECT id, 'uploaded', 'upload', 'pending' FROM v)
       SELECT * FROM v`,
      [
        v.id,
        v.userId,
        v.name,
        v.provider,
        v.language,
        v.sampleKey,
        v.sampleContentType,
        v.sampleFilename,
        v.sampleSizeBytes,
        v.sampleSha256,
        v.traceContext ? JSON.stringify(v.traceContext) : null,
        v.uploadProbe ? JSON.stringify(v.uploadProbe) : null,
      ],
    );
    return voiceFromRow(rows[0]);
  }

  /** Voices of a user waiting for a slot or for their metadata. */
  async pendingCount(userId: string): Promise<number> {
    const rows: { n: number }[] = await this.ds.query(
      `SELECT count(*)::int AS n FROM voices
        WHERE user_id = $1 AND status IN ('pending','queued','allocating')`,
      [userId],
    );
    return rows[0].n;
  }
}
