import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { PROVIDER_NAMES, type ProviderName } from '../config/app-config';
import { budgetState } from '../providers/provider-accounts.repository';
import type { BudgetView } from './clone-budget.service';
import type { ProviderCapacity } from './slots.repository';

// A provider as GET /v1/providers shows it (and provider.* webhook events carry it).
@ApiSchema({ name: 'Churn' })
export class ChurnDto {
  @ApiProperty({ example: 41, description: 'clone operations spent this budget period' })
  used!: number;
  @ApiProperty({ example: 95, nullable: true, type: Number, description: 'null: no budget known' })
  limit!: number | null;
  @ApiProperty({ example: 54, nullable: true, type: Number }) remaining!: number | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) resetsAt!: string | null;
  @ApiProperty({ description: 'the budget is spent until it resets' }) exhausted!: boolean;
  @ApiProperty({
    description:
      'whether the pacing lets any clone out now, a re-clone included (a voice never cloned before may go whenever remaining > 0)',
  })
  allowedNow!: boolean;
}

@ApiSchema({ name: 'ProviderStatus' })
export class ProviderStatusDto {
  @ApiProperty({ enum: PROVIDER_NAMES, enumName: 'ProviderName' }) provider!: ProviderName;
  @ApiProperty({ example: 30 }) limit!: number;
  @ApiProperty({
    example: 28,
    description: 'voices held by the service (allocating, ready, reclaiming)',
  })
  held!: number;
  @ApiProperty({ example: 1, description: 'voices on the account not created by the service' })
  foreign!: number;
  @ApiProperty({ example: 1 }) free!: number;
  @ApiProperty({ example: 12 }) queued!: number;
  @ApiProperty({ example: 45, nullable: true, type: Number }) oldestQueuedSeconds!: number | null;
  @ApiProperty({ enum: ['closed', 'open', 'half_open'], enumName: 'BreakerState' }) breaker!:
    'closed' | 'open' | 'half_open';
  @ApiProperty({ type: ChurnDto, description: 'the clone budget of the account' })
  churn!: ChurnDto;
}

export function toChurn(b: BudgetView): ChurnDto {
  const { allowance } = b;
  const state = budgetState(b.account);
  return {
    used: state.spent,
    limit: allowance.limit,
    remaining: allowance.remaining,
    resetsAt: allowance.resetsAt === null ? null : new Date(allowance.resetsAt).toISOString(),
    exhausted: allowance.exhausted,
    // A clone of either kind may go out now; re-clones may be paced while first clones are not.
    allowedNow: allowance.first > 0 && allowance.reclone > 0,
  };
}

export function toProviderStatus(c: ProviderCapacity, budget: BudgetView): ProviderStatusDto {
  return {
    provider: c.provider,
    limit: c.limit,
    held: c.held,
    foreign: c.foreign,
    free: c.free,
    queued: c.queued,
    oldestQueuedSeconds: c.oldestQueuedSeconds,
    breaker: c.breaker,
    churn: toChurn(budget),
  };
}
