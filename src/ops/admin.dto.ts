import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { PageLimit } from '../common/page-limit';
import { PROVIDER_NAMES, type ProviderName } from '../config/app-config';
import { VoiceDto } from '../voice/voice.dto';

import type { VoiceEventRow } from '../voice/voice.repository';

export {
  ChurnDto,
  ProviderStatusDto,
  toChurn,
  toProviderStatus,
} from '../slots/provider-status.dto';

@ApiSchema({ name: 'Attempt' })
export class AttemptDto {
  @ApiProperty({ example: 'attempt_failed' }) type!: string;
  @ApiProperty({ example: 'provider_retryable' }) reason!: string;
  @ApiProperty({ example: { code: 'system_busy', httpStatus: 429, attempt: 2 } })
  metadata!: Record<string, unknown>;
  @ApiProperty({ format: 'date-time' }) at!: string;
}

@ApiSchema({ name: 'FailedVoice' })
export class FailedVoiceDto {
  @ApiProperty({ type: VoiceDto }) voice!: VoiceDto;
  @ApiProperty({
    type: [AttemptDto],
    description: 'the attempt history: failures and the final verdict',
  })
  attempts!: AttemptDto[];
}

export function toAttempts(events: VoiceEventRow[]): AttemptDto[] {
  return events
    .filter(
      (e) =>
        e.type === 'attempt_failed' ||
        e.type === 'failed' ||
        e.type === 'claimed' ||
        e.type === 'requeued',
    )
    .map((e) => ({
      type: e.type,
      reason: e.reason,
      metadata: e.metadata,
      at: e.createdAt.toISOString(),
    }));
}

export class AdminVoicesQuery {
  @ApiPropertyOptional({ enum: ['failed'], default: 'failed' })
  @IsOptional()
  @IsIn(['failed'])
  status?: 'failed';

  @ApiPropertyOptional({ enum: PROVIDER_NAMES, enumName: 'ProviderName' })
  @IsOptional()
  @IsIn(PROVIDER_NAMES)
  provider?: ProviderName;

  @PageLimit(50)
  limit?: number;
}

export class ReconcileQuery {
  @ApiPropertyOptional({
    enum: PROVIDER_NAMES,
    enumName: 'ProviderName',
    description: 'every enabled provider when absent',
  })
  @IsOptional()
  @IsIn(PROVIDER_NAMES)
  provider?: ProviderName;
}

/** The answer of POST /v1/admin/reconcile: the providers whose reconciliation was requested. */
@ApiSchema({ name: 'ReconcileAccepted' })
export class ReconcileAcceptedDto {
  @ApiProperty({ enum: PROVIDER_NAMES, enumName: 'ProviderName', isArray: true })
  providers!: ProviderName[];
}
