import './config/node-version';
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { AppModule } from './app.module';
import { loadConfig } from './config/app-config';
import { openApiDocument } from './api-docs/openapi';

/**
 * `npm run openapi [-- --out FILE]`: writes the OpenAPI document without a database, Redis or a
 * listening port. Nest's preview mode registers every module and route but instantiates nothing,
 * which is all the document needs. The document is the same as /docs-json of a running api
 * (test/openapi.e2e-spec.ts checks the committed openapi.json against both).
 */
async function main(): Promise<void> {
  const outAt = process.argv.indexOf('--out');
  const out = outAt > 0 ? process.argv[outAt + 1] : undefined;
  // A fixed environment, not the caller's: the document must not depend on who generates it.
  const config = loadConfig({ APP_ROLES: 'api', LOG_LEVEL: 'silent' });
  // The service's platform: Express is no dependency of the service.
  const app = await NestFactory.create(AppModule.forRoot(config), new FastifyAdapter(), {
    preview: true,
    logger: false,
  });
  // As bootstrap.ts routes them (/v1/...).
  app.enableVersioning({ type: VersioningType.URI, defaultVersion: undefined });
  const text = `${JSON.stringify(openApiDocument(app), null, 2)}\n`;
  await app.close();
  if (out) writeFileSync(out, text);
  else process.stdout.write(text);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
