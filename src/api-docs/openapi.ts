import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';

/**
 * The API's OpenAPI document, as /docs-json serves it and `openapi.json` commits it (a test fails
 * when they differ). Operation ids are the handlers' names (`uploadVoice`, `activateVoice`, …),
 * which generators turn into method names; without the factory Nest prefixes the controller's.
 */
export function openApiDocument(app: INestApplication): OpenAPIObject {
  return SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Voice slots')
      .setDescription(
        'Upload voices, wait fairly for a cloned-voice slot at a TTS provider, and get a ready remote voice id. ' +
          'Errors are application/problem+json with a stable `code` (schema Problem).',
      )
      .setVersion('1')
      // Relative: the document is served by the service it describes, wherever that runs.
      .addServer('/')
      .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
      .build(),
    { operationIdFactory: (_controller: string, method: string) => method },
  );
}
