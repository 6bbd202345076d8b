import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AppConfig } from '../../src/config/app-config';
import { kustomize, type K8sObject, type Rendered } from '../deploy/kustomize';

/** The deployment files' suites under test/deploy share these readings of the repository. */

export const ROOT = resolve(__dirname, '../..');
export const K8S = join(ROOT, 'deploy/k8s');

/** The rendered trees each Kubernetes suite checks, as `describe.each` rows. */
export const RENDERED_TREES: [string, string][] = [
  ['base', join(K8S, 'base')],
  ['example overlay', join(K8S, 'overlays/example')],
];

/** Values standing in for the Secret's keys, so each pod's environment can be validated. */
export const SAMPLE_SECRET: Record<string, string> = {
  DATABASE_URL: 'postgres://voice_slots:pw@postgres.example:5432/voice_slots',
  REDIS_URL: 'redis://:pw@redis.example:6379',
  AUTH_JWT_SECRET: 'a-production-secret-of-at-least-32-chars',
  ELEVENLABS_API_KEY: 'sk-eleven',
  CARTESIA_API_KEY: 'sk-cartesia',
};

/** Variables read by libraries rather than by src/config (OpenTelemetry SDK, AWS SDK). */
const LIBRARY_VARIABLE = /^(OTEL|AWS)_/;

/** The health routes the service serves, read from its committed OpenAPI document, not restated. */
function healthRoutes(): string[] {
  const doc = JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8')) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.keys(doc.paths).filter(
    (path) => path.startsWith('/health/') && doc.paths[path].get,
  );
}

export const ROUTES = healthRoutes();

/** Variables the app's configuration knows: loadConfig keeps exactly those (zod strips others). */
export function unknownVariables(env: Record<string, string>, config: AppConfig): string[] {
  const known = new Set([...Object.keys(config), 'APP_ROLES']);
  return Object.keys(env).filter((k) => !known.has(k) && !LIBRARY_VARIABLE.test(k));
}

/** `dist/x/y.js` must be built from `src/x/y.ts`. */
export function scriptExists(script: string): boolean {
  const m = /^dist\/(.+)\.js$/.exec(script);
  return !!m && existsSync(join(ROOT, 'src', `${m[1]}.ts`));
}

export const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

export const podLabels = (o: K8sObject): Record<string, string> =>
  ((o.spec as any)?.template?.metadata?.labels as Record<string, string>) ?? {};

/** One kustomize tree rendered, with the lookups every Kubernetes suite makes in it. */
export function renderManifests(dir: string) {
  const rendered: Rendered[] = kustomize(dir);
  const objects = rendered.map((r) => r.object);
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const deployments = byKind('Deployment');
  const configMaps = new Map(byKind('ConfigMap').map((c) => [c.metadata.name, c]));

  /** A container's environment as the pod would see it, with sample values for Secret keys. */
  function containerEnv(c: Record<string, any>): Record<string, string> {
    const env: Record<string, string> = {};
    for (const from of (c.envFrom ?? []) as Array<Record<string, any>>) {
      const cm = configMaps.get(from.configMapRef?.name as string);
      expect({ configMap: from.configMapRef?.name, found: !!cm }).toEqual({
        configMap: from.configMapRef?.name,
        found: true,
      });
      Object.assign(env, cm?.data ?? {});
    }
    for (const e of (c.env ?? []) as Array<Record<string, any>>) {
      if (e.value !== undefined) env[e.name as string] = String(e.value);
      else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef as { name: string; key: string };
        expect(ref.name).toBe('voice-slots');
        expect(Object.keys(SAMPLE_SECRET)).toContain(ref.key);
        env[e.name as string] = SAMPLE_SECRET[ref.key];
      } else throw new Error(`env ${e.name} has neither a value nor a secretKeyRef`);
    }
    return env;
  }

  return { rendered, objects, byKind, deployments, containerEnv };
}
