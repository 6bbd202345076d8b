import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { containersOf, type K8sObject } from './kustomize';
import { matches, podLabels, RENDERED_TREES, renderManifests, ROOT } from '../support/deploy-files';

/**
 * How the Kubernetes objects reach one another (base and the example overlay, rendered): network
 * policies, the Service, scraping, disruption budgets and autoscalers select the pods they mean.
 */

describe.each(RENDERED_TREES)('Kubernetes manifests: %s', (_label, dir) => {
  const { byKind, deployments } = renderManifests(dir);

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
