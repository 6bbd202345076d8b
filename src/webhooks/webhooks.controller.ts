import { randomBytes } from 'node:crypto';
import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Query,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { ApiProblems } from '../common/api-responses';
import { RequireScopes } from '../auth/auth.guard';
import { ApiError } from '../common/problem';
import { RateLimited } from '../auth/rate-limit';
import { AppConfig } from '../config/config.module';
import { checkWebhookUrl } from './webhook-url';
import {
  CreatedWebhookDto,
  CreateWebhookDto,
  DeliveriesQuery,
  DeliveryDto,
  toDeliveryDto,
  toEndpointDto,
  WebhookEndpointDto,
} from './webhooks.dto';
import { WebhooksRepository } from './webhooks.repository';

const notFound = () => new ApiError(404, 'not_found', 'No such webhook endpoint');
const uuidPipe = new ParseUUIDPipe({ exceptionFactory: notFound });

/** Admin routes of webhook endpoints and their deliveries (CONTRACT.md "Push notifications"). */
@ApiTags('admin')
@ApiBearerAuth()
@RequireScopes('admin')
@ApiProblems(401, 403, 429, 500)
@RateLimited()
@Controller({ path: 'admin/webhooks', version: '1' })
export class WebhooksController {
  constructor(
    private readonly webhooks: WebhooksRepository,
    private readonly config: AppConfig,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Register a webhook endpoint; its signing secret is shown only here' })
  @ApiCreatedResponse({ type: CreatedWebhookDto })
  @ApiProblems(422)
  async createWebhook(@Body() body: CreateWebhookDto): Promise<CreatedWebhookDto> {
    const url = await checkWebhookUrl(body.url, {
      production: this.config.NODE_ENV === 'production',
      allowPrivate: this.config.webhookAllowPrivate,
    });
    // Standard Webhooks' secret format: whsec_ + base64 of 24 random bytes (192 bits).
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const endpoint = await this.webhooks.createEndpoint(url.href, body.events, secret);
    return { ...toEndpointDto(endpoint), secret };
  }

  @Get()
  @ApiOperation({ summary: 'Webhook endpoints (without their secrets)' })
  @ApiOkResponse({ type: [WebhookEndpointDto] })
  async listWebhooks(): Promise<WebhookEndpointDto[]> {
    return (await this.webhooks.listEndpoints()).map(toEndpointDto);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove an endpoint: nothing more is sent to it' })
  @ApiNoContentResponse()
  @ApiProblems(404)
  async deleteWebhook(@Param('id', uuidPipe) id: string): Promise<void> {
    if (!(await this.webhooks.deleteEndpoint(id))) throw notFound();
  }

  @Get(':id/deliveries')
  @ApiOperation({ summary: 'Deliveries to an endpoint, newest first, with every attempt' })
  @ApiOkResponse({ type: [DeliveryDto] })
  @ApiProblems(404, 422)
  async listDeliveries(
    @Param('id', uuidPipe) id: string,
    @Query() query: DeliveriesQuery,
  ): Promise<DeliveryDto[]> {
    if (!(await this.webhooks.endpointExists(id))) throw notFound();
    return (await this.webhooks.deliveries(id, query.status, query.limit ?? 50)).map(toDeliveryDto);
  }

  @Post(':id/deliveries/:deliveryId/retry')
  @HttpCode(202)
  @ApiOperation({ summary: 'Send a pending or failed delivery again now, with a fresh schedule' })
  @ApiAcceptedResponse({ type: DeliveryDto })
  @ApiProblems(404)
  async retryDelivery(
    @Param('id', uuidPipe) id: string,
    @Param('deliveryId', new ParseUUIDPipe({ exceptionFactory: notFound })) deliveryId: string,
  ): Promise<DeliveryDto> {
    const delivery = await this.webhooks.retry(id, deliveryId);
    if (!delivery) throw notFound();
    return toDeliveryDto(delivery);
  }
}
