import type { ExecutionContext } from '@nestjs/common';

/**
 * A value worked out once per route (controller class and handler) rather than per request:
 * route metadata is fixed once the app is built. Keyed by both, since subclasses of a controller
 * share their handlers' functions.
 */
export class RouteMemo<T> {
  private readonly byClass = new WeakMap<object, WeakMap<object, T>>();

  get(context: ExecutionContext, compute: () => T): T {
    const controller = context.getClass();
    const handler = context.getHandler();
    let byHandler = this.byClass.get(controller);
    if (!byHandler) {
      byHandler = new WeakMap();
      this.byClass.set(controller, byHandler);
    }
    if (byHandler.has(handler)) return byHandler.get(handler) as T;
    const value = compute();
    byHandler.set(handler, value);
    return value;
  }
}
