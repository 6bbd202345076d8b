// Writes deploy/k8s/components/prometheus-operator/prometheusrule.yaml from
// deploy/prometheus/alerts.yml, so the Prometheus Operator gets exactly the rules that promtool
// tests (test/deploy/manifests.int-spec.ts fails while the two differ). Run after editing alerts.yml.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const alerts = parse(readFileSync(join(root, 'deploy/prometheus/alerts.yml'), 'utf8'));
const rule = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'voice-slots', labels: { 'app.kubernetes.io/name': 'voice-slots' } },
  spec: { groups: alerts.groups },
};
const header =
  '# Generated from deploy/prometheus/alerts.yml by `node scripts/prometheus-rule.mjs`; edit that file.\n';
writeFileSync(
  join(root, 'deploy/k8s/components/prometheus-operator/prometheusrule.yaml'),
  header + stringify(rule, { lineWidth: 0 }),
);
