/**
 * The hot-path benchmark's baselines: a bare NestJS app (no middleware, guards, pipes or logging)
 * with one GET route returning a constant, run as its own process like the service, on the
 * platform PLATFORM names: `fastify` (the service's) or `express` (Nest's default, which the
 * service ran on before). PORT from the environment; prints "listening" when ready.
 */
import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';

@Controller()
class PingController {
  @Get('ping')
  ping(): { ok: boolean } {
    return { ok: true };
  }
}

@Module({ controllers: [PingController] })
class BareModule {}

async function main(): Promise<void> {
  const platform = process.env.PLATFORM ?? 'fastify';
  let app: INestApplication;
  if (platform === 'fastify')
    app = await NestFactory.create(BareModule, new FastifyAdapter(), { logger: false });
  else if (platform === 'express')
    app = await NestFactory.create(BareModule, new ExpressAdapter(), { logger: false });
  else throw new Error(`PLATFORM must be fastify or express, not ${platform}`);
  await app.listen(Number(process.env.PORT ?? 3999), '127.0.0.1');
  process.stdout.write('listening\n');
}

void main();
