import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { PROVIDER_NAMES, type ProviderName } from '../config/app-config';
import type { Voice } from './voice';
import type { QueueInfo } from './queue-position.repository';
import { VOICE_STATUSES, type VoiceStatus } from './voice-status';
import { publicFailure } from './public-failure';
import { PageLimit } from '../common/page-limit';

@ApiSchema({ name: 'Sample' })
export class SampleDto {
  @ApiProperty({ example: 'wav', nullable: true, type: String }) format!: string | null;
  @ApiProperty({ example: 12000, nullable: true, type: Number }) durationMs!: number | null;
  @ApiProperty({ example: 44100, nullable: true, type: Number }) sampleRate!: number | null;
  @ApiProperty({ example: 1, nullable: true, type: Number }) channels!: number | null;
  @ApiProperty({ example: 1058444 }) sizeBytes!: number;
  @ApiProperty({ example: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' })
  sha256!: string;
}

@ApiSchema({ name: 'Queue' })
export class QueueDto {
  @ApiProperty({ example: 3, nullable: true, type: Number }) position!: number | null;
  @ApiProperty({
    example: false,
    description:
      'true when more voices are ahead than the service counts (QUEUE_POSITION_MAX): the ' +
      'position is then a lower bound',
  })
  positionAtLeast!: boolean;
  @ApiProperty({ example: null, nullable: true, type: String, format: 'date-time' })
  estimatedReadyAt!: string | null;
  @ApiProperty({
    // Inline, not a named enum: OpenAPI 3.0 cannot mark a $ref nullable.
    enum: ['slot', 'clone_budget', 'breaker', 'retry'],
    type: String,
    nullable: true,
    description:
      'why the voice is not being cloned now: waiting for a free slot, for the clone budget (its ' +
      'estimate is then never before the budget resets), for the provider to recover, or for its next try',
  })
  waitReason!: 'slot' | 'clone_budget' | 'breaker' | 'retry' | null;
}

@ApiSchema({ name: 'Failure' })
export class FailureDto {
  @ApiProperty({ example: 'attempts_exhausted' }) code!: string;
  @ApiProperty({ example: 'The provider answered 503 five times' }) message!: string;
  @ApiProperty({ example: 5 }) attempts!: number;
}

@ApiSchema({ name: 'Voice' })
export class VoiceDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'Grandma' }) name!: string;
  @ApiProperty({ enum: PROVIDER_NAMES, enumName: 'ProviderName', example: 'elevenlabs' })
  provider!: ProviderName;
  @ApiProperty({ enum: VOICE_STATUSES, enumName: 'VoiceStatus', example: 'ready' })
  status!: VoiceStatus;
  @ApiProperty({ example: 'c38kUX8pkfYO2kHyqfFy', nullable: true, type: String })
  remoteVoiceId!: string | null;
  @ApiProperty({ type: SampleDto, nullable: true }) sample!: SampleDto | null;
  @ApiProperty({ type: QueueDto, nullable: true }) queue!: QueueDto | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) lastUsedAt!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) leaseExpiresAt!:
    string | null;
  @ApiProperty({ type: FailureDto, nullable: true }) failure!: FailureDto | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

@ApiSchema({ name: 'VoiceList' })
export class VoiceListDto {
  @ApiProperty({ type: [VoiceDto] }) items!: VoiceDto[];
  @ApiProperty({ nullable: true, type: String }) nextCursor!: string | null;
}

@ApiSchema({ name: 'UploadVoice' })
export class UploadVoiceDto {
  @ApiProperty({
    type: 'string',
    format: 'binary',
    description: 'The voice sample (wav, mp3, flac, ogg, webm)',
  })
  file!: unknown;
  @ApiProperty({ example: 'Grandma', maxLength: 100 }) name!: string;
  @ApiProperty({ enum: PROVIDER_NAMES, enumName: 'ProviderName' }) provider!: ProviderName;
  @ApiPropertyOptional({ example: 'en' }) language?: string;
}

export class ListVoicesQuery {
  @ApiPropertyOptional({ enum: VOICE_STATUSES, enumName: 'VoiceStatus' })
  @IsOptional()
  @IsIn(VOICE_STATUSES)
  status?: VoiceStatus;

  @ApiPropertyOptional({ enum: PROVIDER_NAMES, enumName: 'ProviderName' })
  @IsOptional()
  @IsIn(PROVIDER_NAMES)
  provider?: ProviderName;

  @PageLimit(20)
  limit?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(200)
  cursor?: string;
}

export class ActivateQuery {
  @ApiPropertyOptional({
    minimum: 0,
    maximum: 30,
    default: 0,
    description: 'Hold the request until ready, at most this long',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(30)
  waitSeconds?: number;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

/**
 * Lists every response field explicitly, so nothing internal (tokens, keys) leaks by accident.
 * `raw`: the failure as recorded (the provider's code and message), for the admin view only.
 */
export function toVoiceDto(
  voice: Voice,
  queue: QueueInfo | null,
  opts: { raw?: boolean } = {},
): VoiceDto {
  const waiting =
    voice.status === 'queued' || voice.status === 'allocating' || voice.status === 'pending';
  return {
    id: voice.id,
    name: voice.name,
    provider: voice.provider,
    status: voice.status,
    remoteVoiceId: voice.status === 'ready' ? voice.remoteVoiceId : null,
    sample: {
      format: voice.sample.format,
      durationMs: voice.sample.durationMs,
      sampleRate: voice.sample.sampleRate,
      channels: voice.sample.channels,
      sizeBytes: voice.sample.sizeBytes,
      sha256: voice.sample.sha256,
    },
    queue: waiting
      ? {
          position: queue?.position ?? null,
          positionAtLeast: queue?.positionAtLeast ?? false,
          estimatedReadyAt: iso(queue?.estimatedReadyAt ?? null),
          waitReason: queue?.waitReason ?? (voice.status === 'pending' ? null : 'slot'),
        }
      : null,
    lastUsedAt: iso(voice.lastUsedAt),
    leaseExpiresAt: iso(voice.leaseExpiresAt),
    failure:
      voice.status !== 'failed'
        ? null
        : opts.raw
          ? {
              code: voice.failureCode ?? 'unknown',
              message: voice.failureMessage ?? '',
              attempts: voice.attempts,
            }
          : { ...publicFailure(voice.failureCode), attempts: voice.attempts },
    createdAt: voice.createdAt.toISOString(),
    updatedAt: voice.updatedAt.toISOString(),
  };
}
