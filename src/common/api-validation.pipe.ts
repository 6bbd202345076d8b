import { ValidationPipe, type ArgumentMetadata, type Type } from '@nestjs/common';
import { ApiError } from './problem';

/**
 * The service's global ValidationPipe (transform, whitelist, unknown fields refused, errors as
 * 422 validation_failed), which remembers what an empty query or body becomes.
 *
 * Most requests send no query string (activation without waitSeconds) or no body, and the pipe
 * would rebuild and revalidate the same empty DTO each time: class-transformer and
 * class-validator walk the class's metadata, the costliest step of a cached activation. Their
 * result for an empty input depends on the class alone, so it is worked out once per class by the
 * full pipe and copied afterwards. An empty input that fails validation is not remembered and
 * fails through the full pipe every time; results holding objects are not remembered either, so
 * no request shares an object with another.
 */
export class ApiValidationPipe extends ValidationPipe {
  private readonly emptyResults = new Map<Type<unknown>, object | null>();

  constructor() {
    super({
      transform: true,
      whitelist: true,
      forbidNonWhitelisted: true,
      exceptionFactory: (errors) =>
        new ApiError(
          422,
          'validation_failed',
          errors.flatMap((e) => Object.values(e.constraints ?? {})).join('; ') || 'Invalid request',
        ),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const metatype = metadata.metatype;
    const cacheable =
      metatype !== undefined &&
      (metadata.type === 'query' || metadata.type === 'body') &&
      isEmpty(value);
    if (!cacheable) return super.transform(value, metadata);
    const known = this.emptyResults.get(metatype);
    if (known) return copy(known);
    const result: unknown = await super.transform(value, metadata);
    // A copy is remembered: the result itself goes to a handler that may change it.
    if (known === undefined)
      this.emptyResults.set(metatype, flatObject(result) ? copy(result) : null);
    return result;
  }
}

function copy<T extends object>(value: T): T {
  return Object.assign(Object.create(Object.getPrototypeOf(value) as object) as T, value);
}

/** Nothing sent: no value, or an object without keys (Fastify's query of a URL without one). */
function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) if (Object.hasOwn(value, key)) return false;
  return true;
}

/** An object whose own values are all primitives, so a shallow copy shares nothing. */
function flatObject(value: unknown): value is object {
  if (typeof value !== 'object' || value === null) return false;
  return Object.values(value).every((v) => v === null || typeof v !== 'object');
}
