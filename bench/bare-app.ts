/**
 * The hot-path benchmark's baseline: a bare NestJS app (Express platform, no middleware, guards,
 * pipes or logging) with one GET route returning a constant, run as its own process like the
 * service. PORT from the environment; prints "listening" when ready.
 */
import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

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
  const app = await NestFactory.create(BareModule, { logger: false });
  await app.listen(Number(process.env.PORT ?? 3999), '127.0.0.1');
  process.stdout.write('listening\n');
}

void main();
