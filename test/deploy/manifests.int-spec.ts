import 'reflect-metadata';
import { loadConfig, loadDatabaseUrl, PROVIDER_NAMES } from '../../src/config/app-config';
import { containersOf, podSpecOf } from './kustomize';
import {
  matches,
  podLabels,
  RENDERED_TREES,
  renderManifests,
  ROUTES,
  SAMPLE_SECRET,
  scriptExists,
  unknownVariables,
} from '../support/deploy-files';

/**
 * The Kubernetes manifests' objects and pods, checked offline in CI: every object (base and the
 * example overlay, rendered) passes the Kubernetes schema validators, and the pods fit the app:
 * probe paths are routes of the app, ports match PORT, every environment variable is one the
 * configuration knows and every pod's environment passes the configuration's validation, roles and
 * provider groups are real, grace periods cover the drain. How the objects reach one another is in
 * k8s-topology.int-spec.ts; docker-compose.yml and the Dockerfile have their own suites here.
 */

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

describe.each(RENDERED_TREES)('Kubernetes manifests: %s', (_label, dir) => {
  const { rendered, objects, byKind, deployments, containerEnv } = renderManifests(dir);

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
});
