import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import {
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  MaxLength,
} from 'class-validator';
import { PageLimit } from '../common/page-limit';
import {
  WEBHOOK_EVENTS,
  type Delivery,
  type DeliveryStatus,
  type WebhookEndpoint,
  type WebhookEvent,
} from './webhooks.repository';

const STATUSES: DeliveryStatus[] = ['pending', 'delivered', 'failed'];

@ApiSchema({ name: 'CreateWebhook' })
export class CreateWebhookDto {
  @ApiProperty({ example: 'https://app.example.com/hooks/voices', maxLength: 2048 })
  @IsString()
  @MaxLength(2048)
  url!: string;

  @ApiProperty({ enum: WEBHOOK_EVENTS, enumName: 'WebhookEventType', isArray: true })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayUnique()
  @IsIn(WEBHOOK_EVENTS, { each: true })
  events!: WebhookEvent[];
}

@ApiSchema({ name: 'WebhookEndpoint' })
export class WebhookEndpointDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() url!: string;
  @ApiProperty({ enum: WEBHOOK_EVENTS, enumName: 'WebhookEventType', isArray: true })
  events!: WebhookEvent[];
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
}

@ApiSchema({ name: 'CreatedWebhook' })
export class CreatedWebhookDto extends WebhookEndpointDto {
  @ApiProperty({
    example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    description: 'The signing secret; shown only in this answer',
  })
  secret!: string;
}

@ApiSchema({ name: 'WebhookAttempt' })
export class AttemptDto {
  @ApiProperty({ format: 'date-time' }) at!: string;
  @ApiProperty({ nullable: true, type: Number, example: 500 }) status!: number | null;
  @ApiProperty({ nullable: true, type: String, example: 'timeout' }) error!: string | null;
  @ApiProperty({ example: 31 }) durationMs!: number;
}

@ApiSchema({ name: 'WebhookDelivery' })
export class DeliveryDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'evt_1042', description: 'The webhook-id header, stable across retries' })
  eventId!: string;
  @ApiProperty({ enum: WEBHOOK_EVENTS, enumName: 'WebhookEventType' }) eventType!: WebhookEvent;
  @ApiProperty({ format: 'uuid', nullable: true, type: String }) voiceId!: string | null;
  @ApiProperty({ enum: STATUSES, enumName: 'WebhookDeliveryStatus' }) status!: DeliveryStatus;
  @ApiProperty() attempts!: number;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) nextAttemptAt!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) deliveredAt!: string | null;
  @ApiProperty({ type: [AttemptDto] }) history!: AttemptDto[];
}

export class DeliveriesQuery {
  @ApiPropertyOptional({ enum: STATUSES, enumName: 'WebhookDeliveryStatus' })
  @IsOptional()
  @IsIn(STATUSES)
  status?: DeliveryStatus;

  @PageLimit(50)
  limit?: number;
}

export const toEndpointDto = (e: WebhookEndpoint): WebhookEndpointDto => ({
  id: e.id,
  url: e.url,
  events: e.events,
  createdAt: e.createdAt.toISOString(),
});

export const toDeliveryDto = (d: Delivery): DeliveryDto => ({
  id: d.id,
  eventId: d.eventId,
  eventType: d.eventType,
  voiceId: d.voiceId,
  status: d.status,
  attempts: d.attempts,
  nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt.toISOString() : null,
  createdAt: d.createdAt.toISOString(),
  deliveredAt: d.deliveredAt?.toISOString() ?? null,
  history: d.history.map((a) => ({ ...a, durationMs: Math.round(a.durationMs) })),
});
