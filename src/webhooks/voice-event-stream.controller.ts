import {
  Controller,
  createParamDecorator,
  Query,
  Sse,
  SseSignal,
  type ExecutionContext,
  type MessageEvent,
} from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import {
  ApiBearerAuth,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import { IsOptional, Matches } from 'class-validator';
import type { Observable } from 'rxjs';
import { ApiProblems, rateLimitHeaders } from '../common/api-responses';
import { CurrentUser, RequireScopes } from '../auth/auth.guard';
import type { Principal } from '../auth/auth.service';
import { ApiError } from '../common/problem';
import { RateLimited } from '../auth/rate-limit';
import { AppConfig } from '../config/config.module';
import { LongPollGate } from '../voice/long-poll.gate';
import { parseEventId, VoiceEventStreamService } from './voice-event-stream.service';

const EVENT_ID = /^\d{1,19}(_remote)?$/;
/** Characters of events that may wait for a client not reading them before it is dropped. */
const MAX_PENDING_CHARS = 1024 * 1024;

/**
 * The Last-Event-ID header, read from the request's headers as every HTTP adapter keeps them
 * (Node's lower-cased names), and kept out of the generated parameters, where @Headers() would
 * list it as required; the route's @ApiHeader documents it.
 */
const LastEventId = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): string | undefined => {
    const value = ctx.switchToHttp().getRequest<{ headers: IncomingHttpHeaders }>().headers[
      'last-event-id'
    ];
    return Array.isArray(value) ? value[0] : value;
  },
);

export class VoiceEventsQuery {
  @ApiPropertyOptional({
    description: 'Resume after this event, for clients that cannot send Last-Event-ID',
    example: '1234',
  })
  @IsOptional()
  @Matches(EVENT_ID, { message: 'lastEventId must be an event id from this stream' })
  lastEventId?: string;
}

/** GET /v1/voices/events: the token's own voice events as server-sent events. */
@ApiTags('voices')
@ApiBearerAuth()
@ApiProblems(401, 403, 429, 500)
@RateLimited()
@Controller({ path: 'voices', version: '1' })
export class VoiceEventStreamController {
  constructor(
    private readonly stream: VoiceEventStreamService,
    private readonly gate: LongPollGate,
    private readonly config: AppConfig,
  ) {}

  @Sse('events', { maxPendingDataLength: MAX_PENDING_CHARS })
  @RequireScopes('voices:read')
  @ApiOperation({
    summary:
      "Server-sent events of the caller's voices (voice.ready, voice.failed, voice.reclaimed, " +
      'voice.deleted, voice.remote_changed); resume with Last-Event-ID',
    description:
      'Each event has `event:` its type, `id:` its event id and `data:` the same JSON body a ' +
      'webhook delivery carries (`{"type", "timestamp", "data"}`, data the voice as ' +
      '`GET /v1/voices/{id}` shows it, plus `userId`). A `: ping` comment comes every 15 s. ' +
      'Reconnecting with `Last-Event-ID` (or `?lastEventId=`) replays every event after it, then ' +
      'continues live. Open streams count against the same caps as activations waiting for ' +
      'ready: over the per-user cap 429, over the replica cap 503, both with Retry-After.',
  })
  @ApiProduces('text/event-stream')
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    description: 'Resume after this event (sent by EventSource on reconnect)',
  })
  @ApiOkResponse({
    description: 'An endless text/event-stream',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
    headers: rateLimitHeaders('reads'),
  })
  @ApiProblems(422, 503)
  async streamVoiceEvents(
    @CurrentUser() user: Principal,
    @Query() query: VoiceEventsQuery,
    @SseSignal() signal: AbortSignal,
    @LastEventId() header?: string,
  ): Promise<Observable<MessageEvent>> {
    const raw = header ?? query.lastEventId;
    const resume = raw === undefined || raw === '' ? null : parseEventId(raw);
    if (raw && !resume)
      throw new ApiError(
        422,
        'validation_failed',
        'Last-Event-ID is not an event id of this stream',
      );
    const release = this.gate.tryEnter(user.userId);
    if (!release) throw this.overCap();
    // The signal aborts however the request ends, even before the stream is subscribed.
    signal.addEventListener('abort', release, { once: true });
    try {
      const start = await this.stream.resumeFrom(user.userId, resume);
      return this.stream.stream(user.userId, start, release);
    } catch (err) {
      release();
      throw err;
    }
  }

  private overCap(): ApiError {
    if (this.gate.waiting >= this.config.LONG_POLL_MAX_PER_REPLICA)
      return new ApiError(
        503,
        'service_unavailable',
        'This replica holds all the open waits it can; retry',
        {
          'Retry-After': '2',
        },
      );
    return new ApiError(
      429,
      'rate_limited',
      'Too many open event streams and waits for this user',
      {
        'Retry-After': '5',
      },
    );
  }
}
