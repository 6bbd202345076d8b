import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiIdempotencyKey, ApiProblems, rateLimitHeaders } from '../common/api-responses';
import { CurrentUser, RequireScopes } from '../auth/auth.guard';
import type { Principal } from '../auth/auth.service';
import { ApiError } from '../common/problem';
import { RateLimit, RateLimited } from '../auth/rate-limit';
import {
  ActivateQuery,
  ListVoicesQuery,
  toVoiceDto,
  UploadVoiceDto,
  VoiceDto,
  VoiceListDto,
} from './voice.dto';
import { VoiceActivationService } from './voice-activation.service';
import { VoiceLifecycleService } from './voice-lifecycle.service';
import { VoiceQueriesService } from './voice-queries.service';
import { VoiceUploadService } from './voice-upload.service';

const uuidPipe = new ParseUUIDPipe({
  exceptionFactory: () => new ApiError(404, 'voice_not_found', 'No such voice'),
});

@ApiTags('voices')
@ApiBearerAuth()
@ApiProblems(401, 403, 429, 500)
@RateLimited()
@Controller({ path: 'voices', version: '1' })
export class VoicesController {
  constructor(
    private readonly uploads: VoiceUploadService,
    private readonly queries: VoiceQueriesService,
    private readonly activation: VoiceActivationService,
    private readonly lifecycle: VoiceLifecycleService,
  ) {}

  @Post()
  @HttpCode(202)
  @RequireScopes('voices:write')
  @RateLimit('uploads')
  @ApiOperation({
    summary: 'Upload a voice sample; it is analysed, queued and cloned when a slot frees',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({ type: UploadVoiceDto })
  @ApiIdempotencyKey()
  @ApiAcceptedResponse({
    type: VoiceDto,
    headers: {
      'Idempotent-Replayed': {
        description: '`true` when this answers an earlier request with the same Idempotency-Key',
        schema: { type: 'string', enum: ['true'] },
      },
      ...rateLimitHeaders('uploads'),
    },
  })
  @ApiProblems(400, 408, 409, 413, 415, 422, 503)
  async uploadVoice(
    @CurrentUser() user: Principal,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<VoiceDto> {
    const key = req.headers['idempotency-key'];
    // The multipart body is left unread by Fastify (bootstrap.ts) and streamed from the socket.
    const result = await this.uploads.upload(
      user.userId,
      req.headers,
      req.raw,
      Array.isArray(key) ? key.join(', ') : key,
    );
    if (result.replayed) void res.header('Idempotent-Replayed', 'true');
    return result.response;
  }

  @Get()
  @RequireScopes('voices:read')
  @ApiOperation({ summary: "List the caller's voices, newest first" })
  @ApiOkResponse({ type: VoiceListDto, headers: rateLimitHeaders('reads') })
  @ApiProblems(422)
  async listVoices(
    @CurrentUser() user: Principal,
    @Query() query: ListVoicesQuery,
  ): Promise<VoiceListDto> {
    const page = await this.queries.list({
      ...query,
      userId: user.userId,
      limit: query.limit ?? 20,
    });
    return { items: page.items.map((v) => toVoiceDto(v, null)), nextCursor: page.nextCursor };
  }

  @Get(':id')
  @RequireScopes('voices:read')
  @ApiOperation({ summary: 'Read a voice' })
  @ApiOkResponse({ type: VoiceDto })
  @ApiProblems(404)
  async getVoice(
    @CurrentUser() user: Principal,
    @Param('id', uuidPipe) id: string,
  ): Promise<VoiceDto> {
    const { voice, queue } = await this.queries.get(user.userId, id);
    return toVoiceDto(voice, queue);
  }

  @Post(':id/activate')
  @RequireScopes('voices:write')
  @RateLimit('activations')
  @ApiOperation({
    summary:
      'Get a ready remote voice id: 200 when ready (lease extended), 202 while waiting for a slot',
  })
  @ApiOkResponse({ type: VoiceDto, description: 'ready', headers: rateLimitHeaders('activations') })
  @ApiAcceptedResponse({
    type: VoiceDto,
    description: 'queued or allocating',
    headers: rateLimitHeaders('activations'),
  })
  @ApiProblems(404, 409, 422)
  async activateVoice(
    @CurrentUser() user: Principal,
    @Param('id', uuidPipe) id: string,
    @Query() query: ActivateQuery,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<VoiceDto> {
    const result = await this.activation.activate(user.userId, id, query.waitSeconds ?? 0);
    void res.status(result.ready ? 200 : 202);
    return toVoiceDto(result.voice, result.queue);
  }

  @Delete(':id')
  @HttpCode(202)
  @RequireScopes('voices:write')
  @ApiOperation({ summary: 'Delete a voice: its remote voice and sample are removed' })
  @ApiAcceptedResponse({ type: VoiceDto })
  @ApiProblems(404, 409)
  async deleteVoice(
    @CurrentUser() user: Principal,
    @Param('id', uuidPipe) id: string,
  ): Promise<VoiceDto> {
    return toVoiceDto(await this.lifecycle.delete(user.userId, id), null);
  }
}
