import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');
export const ALERTS = join(ROOT, 'deploy/prometheus/alerts.yml');
export const ALERT_TESTS = join(ROOT, 'deploy/prometheus/alerts.test.yml');
export const DASHBOARD = join(ROOT, 'deploy/grafana/voice-slots.json');

export interface AlertRule {
  alert: string;
  /** The rule's own text (alerts.yml keeps one rule per `- alert:` block). */
  block: string;
}

export function alertRules(): AlertRule[] {
  return readFileSync(ALERTS, 'utf8')
    .split(/^\s*- alert: /m)
    .slice(1)
    .map((block) => ({ alert: block.split('\n')[0].trim(), block }));
}

export interface Panel {
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: { expr: string }[];
}

export function dashboardPanels(): Panel[] {
  return (JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }).panels;
}

/** Metric names a PromQL expression reads (label names, values and functions left out). */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '');
  const names = bare.match(/\b(?:voices|voice_\w+|provider_\w+|http_\w+|bull_\w+)\b/g) ?? [];
  return [...new Set(names)];
}

/** Every metric the alerts and the dashboard query (for the end-to-end scrape to check). */
export function queriedMetrics(): string[] {
  const fromAlerts = alertRules().flatMap((r) =>
    metricNames(/expr: (?:>-\n)?([\s\S]*?)\n\s+(?:for|labels):/.exec(r.block)?.[1] ?? ''),
  );
  const fromDashboard = dashboardPanels().flatMap((p) =>
    (p.targets ?? []).flatMap((t) => metricNames(t.expr)),
  );
  return [...new Set([...fromAlerts, ...fromDashboard])].sort();
}
