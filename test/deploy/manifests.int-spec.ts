import 'reflect-metadata';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import {
  loadConfig,
  loadDatabaseUrl,
  PROVIDER_NAMES,
  type AppConfig,
} from '../../src/config/app-config';
import { loadSandboxConfig } from '../../src/config/sandbox-config';
import { containersOf, kustomize, podSpecOf, type K8sObject, type Rendered } from './kustomize';

/**
 * The deployment files, checked offline in CI: every Kubernetes manifest (base and the example
 * overlay, rendered) passes the Kubernetes schema validators, and the pieces fit together and fit
 * the app: probe paths are routes of the app, ports match PORT, every environment variable is one
 * the configuration knows and every pod's environment passes the configuration's validation, roles
 * and provider groups are real, grace periods cover the drain. docker-compose.yml and the
 * Dockerfile get the same treatment where it applies.
 */

const ROOT = resolve(__dirname, '../..');
const K8S = join(ROOT, 'deploy/k8s');

/** Values standing in for the Secret's keys, so each pod's environment can be validated. */
const SAMPLE_SECRET: Record<string, string> = {
  DATABASE_URL: 'postgres://voice_slots:pw@postgres.example:5432/voice_slots',
  REDIS_URL: 'redis://:pw@redis.example:6379',
  AUTH_JWT_SECRET: 'a-production-secret-of-at-least-32-chars',
  ELEVENLABS_API_KEY: 'sk-eleven',
  CARTESIA_API_KEY: 'sk-cartesia',
};

/** Variables read by libraries rather than by src/config (OpenTelemetry SDK, AWS SDK). */
const LIBRARY_VARIABLE = /^(OTEL|AWS)_/;

/** Keys of the sandbox's schema (src/config/sandbox-config.ts). */
const SANDBOX_VARIABLES = [
  'SANDBOX_PORT',
  'SANDBOX_HOST',
  'SANDBOX_ELEVENLABS_LIMIT',
  'SANDBOX_CARTESIA_LIMIT',
  'SANDBOX_VOICE_LIMIT',
  'SANDBOX_LATENCY_MS',
];

/** The health routes the service serves, read from its committed OpenAPI document, not restated. */
function healthRoutes(): string[] {
  const doc = JSON.parse(readFileSync(join(__dirname, '..', '..', 'openapi.json'), 'utf8')) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.keys(doc.paths).filter(
    (path) => path.startsWith('/health/') && doc.paths[path].get,
  );
}

/** Variables the app's configuration knows: loadConfig keeps exactly those (zod strips others). */
function unknownVariables(env: Record<string, string>, config: AppConfig): string[] {
  const known = new Set([...Object.keys(config), 'APP_ROLES']);
  return Object.keys(env).filter((k) => !known.has(k) && !LIBRARY_VARIABLE.test(k));
}

/** `dist/x/y.js` must be built from `src/x/y.ts`. */
function scriptExists(script: string): boolean {
  const m = /^dist\/(.+)\.js$/.exec(script);
  return !!m && existsSync(join(ROOT, 'src', `${m[1]}.ts`));
}

const KINDS: Record<string, () => Promise<new (data: any) => { validate(): void }>> = {
  'v1/ConfigMap': async () => (await import('kubernetes-models/v1/ConfigMap')).ConfigMap,
  'v1/Namespace': async () => (await import('kubernetes-models/v1/Namespace')).Namespace,
  'v1/Service': async () => (await import('kubernetes-models/v1/Service')).Service,
  'v1/ServiceAccount': async () =>
    (await import('kubernetes-models/v1/ServiceAccount')).ServiceAccount,
  'apps/v1/Deployment': async () =>
    (await import('kubernetes-models/apps/v1/Deployment')).Deployment,
  'batch/v1/Job': async () => (await import('kubernetes-models/batch/v1/Job')).Job,
  'networking.k8s.io/v1/NetworkPolicy': async () =>
    (await import('kubernetes-models/networking.k8s.io/v1/NetworkPolicy')).NetworkPolicy,
  'monitoring.coreos.com/v1/PodMonitor': async () =>
    (await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'))
      .PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': async () =>
    (await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'))
      .PrometheusRule,
  'policy/v1/PodDisruptionBudget': async () =>
    (await import('kubernetes-models/policy/v1/PodDisruptionBudget')).PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': async () =>
    (await import('kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'))
      .HorizontalPodAutoscaler,
};

const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

const podLabels = (o: K8sObject): Record<string, string> =>
  ((o.spec as any)?.template?.metadata?.labels as Record<string, string>) ?? {};

const ROUTES = healthRoutes();

describe.each([
  ['base', join(K8S, 'base')],
  ['example overlay', join(K8S, 'overlays/example')],
])('Kubernetes manifests: %s', (_label, dir) => {
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

  it('passes the Kubernetes schema validation', async () => {
    expect(objects.length).toBeGreaterThan(0);
    for (const { file, object } of rendered) {
      const Model = KINDS[`${object.apiVersion}/${object.kind}`];
      if (!Model) throw new Error(`${file}: no validator for ${object.apiVersion} ${object.kind}`);
      const Ctor = await Model();
      try {
        new Ctor(object).validate();
      } catch (err) {
        throw new Error(`${file}: ${object.kind} ${object.metadata.name}: ${String(err)}`, {
          cause: err,
        });
      }
    }
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(names).size).toBe(names.length);
  });

  it('runs every role, a worker group per provider and the migration as a Job', () => {
    const roles = deployments.map((d) => {
      const env = containerEnv(containersOf(d)[0]);
      return loadConfig(env);
    });
    const all = new Set(roles.flatMap((c) => [...c.roles]));
    expect([...all].sort()).toEqual(['api', 'scheduler', 'worker']);
    const served = roles.filter((c) => c.roles.has('worker')).flatMap((c) => c.workerProviders);
    expect([...new Set(served)].sort()).toEqual([...PROVIDER_NAMES].sort());

    const jobs = byKind('Job');
    expect(jobs.map((j) => j.metadata.name)).toEqual(['voice-slots-migrate']);
    const [migrate] = containersOf(jobs[0]);
    expect(migrate.command).toEqual(['node', 'dist/database/migrate.js']);
    expect(scriptExists('dist/database/migrate.js')).toBe(true);
    expect(podSpecOf(jobs[0])?.restartPolicy).toBe('Never');
    // Least privilege: the database URL it reads (src/database/migrate.ts), no other secret.
    const env = containerEnv(migrate);
    expect(Object.keys(env)).toEqual(['DATABASE_URL']);
    expect(loadDatabaseUrl(env)).toBe(SAMPLE_SECRET.DATABASE_URL);
  });

  it.each(['api', 'worker', 'scheduler'])(
    'gives each %s pod probes on real routes, resources, a valid environment and a drain-long grace',
    (role) => {
      const ofRole = deployments.filter(
        (d) => d.metadata.labels?.['app.kubernetes.io/component'] === role,
      );
      expect(ofRole.length).toBeGreaterThan(0);
      for (const d of ofRole) {
        const where = `Deployment ${d.metadata.name}`;
        const spec = d.spec as Record<string, any>;
        expect({ where, selected: matches(spec.selector.matchLabels, podLabels(d)) }).toEqual({
          where,
          selected: true,
        });
        // No other Deployment's pods fall under this selector (they would fight over pods).
        const overlapping = deployments.filter(
          (o) => o !== d && matches(spec.selector.matchLabels, podLabels(o)),
        );
        expect(overlapping.map((o) => o.metadata.name)).toEqual([]);

        const pod = podSpecOf(d) as Record<string, any>;
        const [c] = containersOf(d) as Array<Record<string, any>>;
        expect(c.command).toBeUndefined(); // the image's CMD: node dist/main.js
        expect(c.image).toMatch(/(^|\/)voice-slots(:|$)/);

        const env = containerEnv(c);
        const config = loadConfig(env);
        expect({ where, unknown: unknownVariables(env, config) }).toEqual({ where, unknown: [] });
        expect([...config.roles]).toEqual([role]);
        expect(config.NODE_ENV).toBe('production');
        expect(config.DB_MIGRATE).toBe('off');
        expect(config.sandboxEnabled).toBe(false);
        expect(config.STORAGE_DRIVER).toBe('s3');
        if (role === 'worker') {
          const group = d.metadata.labels?.['voice-slots/worker-group'];
          expect(config.workerProviders).toEqual([group]);
        }

        const http = (c.ports as Array<Record<string, any>>).find((p) => p.name === 'http');
        expect(http?.containerPort).toBe(config.PORT);
        const probe = (name: string) => {
          const get = c[name]?.httpGet as { path: string; port: string | number } | undefined;
          expect({ where, probe: name, defined: !!get }).toEqual({
            where,
            probe: name,
            defined: true,
          });
          expect([config.PORT, 'http']).toContain(get!.port);
          expect(ROUTES).toContain(get!.path);
          return get!.path;
        };
        expect(probe('startupProbe')).toBe('/health/live');
        expect(probe('livenessProbe')).toBe('/health/live');
        expect(probe('readinessProbe')).toBe('/health/ready');

        expect(c.resources?.requests?.cpu).toBeDefined();
        expect(c.resources?.requests?.memory).toBeDefined();
        expect(c.resources?.limits?.memory).toBeDefined();

        // Kubernetes counts preStop inside the grace period; SIGTERM comes after it.
        const preStop = Number(c.lifecycle?.preStop?.sleep?.seconds ?? 0);
        const drain = preStop + config.SHUTDOWN_GRACE_SECONDS;
        expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(drain + 5);
        expect(pod.terminationGracePeriodSeconds).toBeLessThanOrEqual(drain + 15);

        expect(pod.securityContext?.runAsNonRoot).toBe(true);
        expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
        expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
        const accounts = byKind('ServiceAccount').map((s) => s.metadata.name);
        expect(accounts).toContain(pod.serviceAccountName);
      }
    },
  );

  it('lets the world reach only the api, and the pods reach only their dependencies', () => {
    const policies = byKind('NetworkPolicy');
    const applying = (d: K8sObject) =>
      policies.filter((p) => matches((p.spec as any).podSelector.matchLabels, podLabels(d)));
    for (const d of deployments) {
      const mine = applying(d);
      const where = d.metadata.name;
      // Ingress from any source (a rule without `from`) on the http port: the api only.
      const open = mine.some((p) =>
        ((p.spec as any).ingress ?? []).some((r: any) => !r.from && r.ports?.[0]?.port === 'http'),
      );
      expect({ where, open }).toEqual({
        where,
        open: d.metadata.labels?.['app.kubernetes.io/component'] === 'api',
      });
      // Every pod is under an egress policy, and none may reach the cloud metadata address.
      interface EgressRule {
        to?: { ipBlock?: { except?: string[] } }[];
        ports?: { port: number | string }[];
      }
      const egress = mine.flatMap((p) => ((p.spec as any).egress ?? []) as EgressRule[]);
      expect({ where, egress: egress.length > 0 }).toEqual({ where, egress: true });
      for (const rule of egress)
        for (const to of rule.to ?? [])
          if (to.ipBlock) expect(to.ipBlock.except).toContain('169.254.169.254/32');
      const ports = egress.flatMap((r) => (r.ports ?? []).map((x) => x.port));
      expect(ports).toEqual(expect.arrayContaining([53, 5432, 6379, 443]));
    }
  });

  it('scrapes every pod and carries exactly alerts.yml when the Prometheus Operator component is used', () => {
    const [rule] = byKind('PrometheusRule');
    const [monitor] = byKind('PodMonitor');
    if (!rule && !monitor) return; // the base leaves the component out
    const alerts = parse(readFileSync(join(ROOT, 'deploy/prometheus/alerts.yml'), 'utf8')) as {
      groups: unknown;
    };
    // Regenerate with `node scripts/prometheus-rule.mjs` after editing alerts.yml.
    expect((rule.spec as any).groups).toEqual(alerts.groups);
    const selector = (monitor.spec as any).selector.matchLabels as Record<string, string>;
    const endpoint = (monitor.spec as any).podMetricsEndpoints[0];
    expect(endpoint.path).toBe('/metrics');
    for (const d of deployments) {
      expect({ d: d.metadata.name, scraped: matches(selector, podLabels(d)) }).toEqual({
        d: d.metadata.name,
        scraped: true,
      });
      const ports = (containersOf(d)[0].ports as Array<{ name: string }>).map((p) => p.name);
      expect(ports).toContain(endpoint.port);
    }
  });

  it('exposes the api through a Service on its http port', () => {
    const [svc] = byKind('Service');
    const selector = (svc.spec as any).selector as Record<string, string>;
    const selected = deployments.filter((d) => matches(selector, podLabels(d)));
    expect(selected.map((d) => d.metadata.labels?.['app.kubernetes.io/component'])).toEqual([
      'api',
    ]);
    const ports = (containersOf(selected[0])[0].ports as Array<{ name: string }>).map(
      (p) => p.name,
    );
    for (const p of (svc.spec as any).ports as Array<{ targetPort: string }>)
      expect(ports).toContain(p.targetPort);
  });

  it('protects every Deployment with one PodDisruptionBudget it can honour', () => {
    const hpas = byKind('HorizontalPodAutoscaler');
    for (const d of deployments) {
      const pdbs = byKind('PodDisruptionBudget').filter((p) =>
        matches((p.spec as any).selector.matchLabels, podLabels(d)),
      );
      expect({ deployment: d.metadata.name, pdbs: pdbs.length }).toEqual({
        deployment: d.metadata.name,
        pdbs: 1,
      });
      const hpa = hpas.find((h) => (h.spec as any).scaleTargetRef.name === d.metadata.name);
      const replicas = Number(hpa ? (hpa.spec as any).minReplicas : (d.spec as any).replicas);
      const minAvailable = (pdbs[0].spec as any).minAvailable as number | undefined;
      if (minAvailable !== undefined) expect(replicas).toBeGreaterThan(minAvailable);
      else expect(replicas).toBeGreaterThan(1);
    }
  });

  it('autoscales every worker group, and only through its autoscaler', () => {
    const hpas = byKind('HorizontalPodAutoscaler');
    const workers = deployments.filter(
      (d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'worker',
    );
    expect(workers.length).toBeGreaterThan(0);
    for (const w of workers) {
      const hpa = hpas.find((h) => (h.spec as any).scaleTargetRef.name === w.metadata.name);
      expect({ worker: w.metadata.name, hpa: !!hpa }).toEqual({
        worker: w.metadata.name,
        hpa: true,
      });
      expect((hpa!.spec as any).scaleTargetRef.kind).toBe('Deployment');
      expect((hpa!.spec as any).minReplicas).toBeGreaterThanOrEqual(2);
      // A replicas field would reset the autoscaler's choice on every apply.
      expect((w.spec as any).replicas).toBeUndefined();
    }
    for (const h of hpas)
      expect(deployments.map((d) => d.metadata.name)).toContain(
        (h.spec as any).scaleTargetRef.name,
      );
  });
});

describe.each([['base'], ['overlays/example'], ['components/prometheus-operator']])(
  'kustomization %s',
  (sub) => {
    it('uses every YAML file of its directory, as a resource or a patch', () => {
      const dir = join(K8S, sub);
      const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as {
        resources?: string[];
        patches?: Array<{ path: string }>;
      };
      const used = new Set([...(k.resources ?? []), ...(k.patches ?? []).map((p) => p.path)]);
      const files = readdirSync(dir).filter(
        (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml',
      );
      expect(files.filter((f) => !used.has(f))).toEqual([]);
    });
  },
);

/** `${VAR:-default}` and `${VAR}` as Compose interpolates them with nothing set in the shell. */
/** compose's `${NAME:-default}` against a shell environment (unset names take the default). */
function interpolate(value: unknown, shell: Record<string, string> = {}): string {
  return String(value).replace(
    /\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g,
    (_m, name: string, def?: string) => shell[name] || (def ?? ''),
  );
}
/** The shell the compose file's header asks for. */
const COMPOSE_SHELL = { AUTH_JWT_SECRET: 'a-random-secret-from-openssl-rand-hex-32' };

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), {
    merge: true,
  }) as { services: Record<string, Record<string, any>> };
  const services = compose.services;
  const dockerfileCmd = (() => {
    const m = /^CMD\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    return JSON.parse(m![1]) as string[];
  })();
  const ours = Object.entries(services).filter(([, s]) => s.build !== undefined);
  const envOf = (
    s: Record<string, any>,
    shell: Record<string, string> = COMPOSE_SHELL,
  ): Record<string, string> =>
    Object.fromEntries(
      Object.entries((s.environment ?? {}) as Record<string, unknown>).map(([k, v]) => [
        k,
        interpolate(v, shell),
      ]),
    );
  const commandOf = (s: Record<string, any>): string[] => (s.command as string[]) ?? dockerfileCmd;

  it('has the services the README and docs/deploy.md name', () => {
    for (const name of ['postgres', 'redis', 'migrate', 'api', 'worker', 'scheduler', 'sandbox'])
      expect(Object.keys(services)).toContain(name);
  });

  it('publishes every port on 127.0.0.1 only', () => {
    const published = Object.entries(services).flatMap(([name, s]) =>
      ((s.ports ?? []) as unknown[]).map((p) => [name, String(p)]),
    );
    expect(published.length).toBeGreaterThan(0);
    for (const [name, port] of published)
      expect({ name, port: /^127\.0\.0\.1:\d+:\d+$/.test(port) }).toEqual({ name, port: true });
  });

  it('refuses to run the service without a real secret, listening on 0.0.0.0 with one', () => {
    for (const [name, s] of ours) {
      if (commandOf(s)[1] !== 'dist/main.js') continue;
      // No AUTH_JWT_SECRET in the shell: the published development secret on 0.0.0.0.
      expect(() => loadConfig(envOf(s, {}))).toThrow(/AUTH_JWT_SECRET[^\n]*non-loopback/);
      expect({ name, host: loadConfig(envOf(s)).listenHost }).toEqual({ name, host: '0.0.0.0' });
    }
  });

  it('runs Redis without eviction', () => {
    const cmd = (services.redis.command as string[]).join(' ');
    expect(cmd).toMatch(/--maxmemory-policy noeviction/);
  });

  it('gives every app service a valid environment of known variables and a built script', () => {
    const sandboxPort = loadSandboxConfig(envOf(services.sandbox)).port;
    for (const [name, s] of ours) {
      const cmd = commandOf(s);
      expect({ name, cmd0: cmd[0], script: scriptExists(cmd[1]) }).toEqual({
        name,
        cmd0: 'node',
        script: true,
      });
      const env = envOf(s);
      if (cmd[1] === 'dist/providers/sandbox/sandbox.main.js') {
        expect(Object.keys(env).filter((k) => !SANDBOX_VARIABLES.includes(k))).toEqual([]);
        expect(loadSandboxConfig(env).host).toBe('0.0.0.0');
        continue;
      }
      const config = loadConfig(env);
      expect({ name, unknown: unknownVariables(env, config) }).toEqual({ name, unknown: [] });
      // One shared sandbox for every process, reached by its service name and port.
      for (const p of PROVIDER_NAMES) {
        expect(config.providers[p].sandbox).toBe(false);
        expect(config.providers[p].baseUrl).toBe(`http://sandbox:${sandboxPort}/${p}`);
      }
      if (cmd[1] === 'dist/database/migrate.js') continue;
      expect(config.DB_MIGRATE).toBe('off');
      expect(s.depends_on?.migrate?.condition).toBe('service_completed_successfully');
      expect(parseInt(String(s.stop_grace_period), 10)).toBeGreaterThan(
        config.SHUTDOWN_GRACE_SECONDS,
      );
      expect(String(s.healthcheck?.test?.join(' '))).toContain(`:${config.PORT}/health/ready`);
      expect(ROUTES).toContain('/health/ready');
    }
    const roles = ours
      .filter(([, s]) => commandOf(s)[1] === 'dist/main.js')
      .map(([name, s]) => [name, envOf(s).APP_ROLES]);
    expect(Object.fromEntries(roles)).toMatchObject({
      api: 'api',
      worker: 'worker',
      scheduler: 'scheduler',
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');

  it('builds in stages and runs production dependencies as a non-root user', () => {
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(3);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^USER (?!0\b|root\b)\S+/m);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/main\.js"\]$/m);
    expect(scriptExists('dist/main.js')).toBe(true);
    for (const entry of ['**/node_modules', 'dist', '.git', '.env', 'data'])
      expect(ignore).toContain(entry);
  });

  it('listens on every interface in the container', () => {
    // Behind a published port or a Service the loopback is unreachable; the config then demands a
    // real secret (app-config.ts).
    expect(dockerfile).toMatch(/^\s*HOST=0\.0\.0\.0\s*$/m);
  });
});
