import { Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { ApiProblems, rateLimitHeaders } from '../common/api-responses';
import { RequireScopes } from '../auth/auth.guard';
import { ApiError } from '../common/problem';
import { RateLimited } from '../auth/rate-limit';
import { ProviderRegistry } from '../providers/provider-registry';
import { CapacityService } from '../slots/capacity.service';
import { CloneBudgetService } from '../slots/clone-budget.service';
import { SlotsRepository } from '../slots/slots.repository';
import { toVoiceDto, VoiceDto } from '../voice/voice.dto';
import { VoiceRepository } from '../voice/voice.repository';
import { VoiceLifecycleService } from '../voice/voice-lifecycle.service';
import {
  AdminVoicesQuery,
  FailedVoiceDto,
  ProviderStatusDto,
  ReconcileAcceptedDto,
  ReconcileQuery,
  toAttempts,
  toProviderStatus,
} from './admin.dto';

const uuidPipe = new ParseUUIDPipe({
  exceptionFactory: () => new ApiError(404, 'voice_not_found', 'No such voice'),
});

/** Operator routes: the slot pool per provider, dead letters, retries and reconciliation. */
@ApiTags('admin')
@ApiBearerAuth()
@RequireScopes('admin')
@ApiProblems(401, 403, 429, 500)
@RateLimited()
@Controller({ version: '1' })
export class AdminController {
  constructor(
    private readonly slots: SlotsRepository,
    private readonly providers: ProviderRegistry,
    private readonly voices: VoiceRepository,
    private readonly voiceService: VoiceLifecycleService,
    private readonly capacity: CapacityService,
    private readonly budget: CloneBudgetService,
  ) {}

  @Get('providers')
  @ApiOperation({
    summary:
      'Slots per provider account: limit, held, foreign, free, backlog, breaker, clone budget (churn)',
  })
  @ApiOkResponse({ type: [ProviderStatusDto], headers: rateLimitHeaders('reads') })
  async listProviders(): Promise<ProviderStatusDto[]> {
    return Promise.all(
      this.providers
        .enabled()
        .map(async (p) =>
          toProviderStatus(await this.slots.capacity(p), await this.budget.view(p)),
        ),
    );
  }

  @Get('admin/voices')
  @ApiOperation({ summary: 'Failed voices (dead letters) with their reasons and attempt history' })
  @ApiOkResponse({ type: [FailedVoiceDto], headers: rateLimitHeaders('reads') })
  @ApiProblems(422)
  async listFailedVoices(@Query() query: AdminVoicesQuery): Promise<FailedVoiceDto[]> {
    const voices = await this.voices.list({
      status: 'failed',
      provider: query.provider,
      limit: query.limit ?? 50,
    });
    return Promise.all(
      voices.map(async (v) => ({
        voice: toVoiceDto(v, null, { raw: true }),
        attempts: toAttempts(await this.voices.events(v.id)),
      })),
    );
  }

  @Post('admin/voices/:id/retry')
  @HttpCode(202)
  @ApiOperation({ summary: 'Queue a failed voice again with a fresh attempt budget' })
  @ApiAcceptedResponse({ type: VoiceDto })
  @ApiProblems(404, 409)
  async retryVoice(@Param('id', uuidPipe) id: string): Promise<VoiceDto> {
    return toVoiceDto(await this.voiceService.retryFailed(id), null);
  }

  @Post('admin/reconcile')
  @HttpCode(202)
  @ApiOperation({ summary: 'Reconcile now with what the providers hold (runs on a worker)' })
  @ApiAcceptedResponse({ type: ReconcileAcceptedDto, headers: rateLimitHeaders('writes') })
  @ApiProblems(422)
  async reconcileProviders(@Query() query: ReconcileQuery): Promise<ReconcileAcceptedDto> {
    const targets = query.provider ? [query.provider] : this.providers.enabled();
    for (const p of targets) {
      if (!this.providers.has(p))
        throw new ApiError(422, 'provider_unavailable', `Provider ${p} is not enabled`);
      await this.capacity.requestReconcile(p);
    }
    return { providers: targets };
  }
}
