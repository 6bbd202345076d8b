import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { MetricsService } from './metrics.service';

@ApiExcludeController()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get()
  async scrape(@Res({ passthrough: true }) res: FastifyReply): Promise<string> {
    const text = await this.metrics.render();
    // The registry's own content type (the exposition format version it writes), not a copy.
    void res.header('Content-Type', this.metrics.registry.contentType);
    return text;
  }
}
