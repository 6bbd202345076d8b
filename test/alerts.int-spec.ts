import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALERT_TESTS, ALERTS, alertRules, dashboardPanels, ROOT } from './support/monitoring';
import { checkRules, hasPromtool, promtool } from './support/prometheus';

/**
 * The operators' side of observability, checked with Prometheus' own tool (or, where it is not
 * installed, Prometheus' own PromQL grammar): the alert rules load,
 * fire on the situations they describe (promtool's rule unit tests), and each leads to a runbook
 * that exists and names it; the dashboard's queries are valid PromQL.
 */
describe('alerts, runbooks and dashboard', () => {
  it('loads the alert rules (promtool, or the PromQL grammar without it)', () => {
    const check = checkRules(ALERTS);
    expect(check.problems).toEqual([]);
    expect(check.rules).toBe(alertRules().length);
  });

  it('fires each alert on the situation it describes, and only there (promtool test rules)', () => {
    const tested = readFileSync(ALERT_TESTS, 'utf8');
    for (const { alert } of alertRules()) expect(tested).toContain(`alertname: ${alert}`);
    // Evaluating the rules over the test series needs Prometheus' engine, which only promtool
    // has (CI installs it); without it the tests are checked for coverage alone, and said so.
    if (!hasPromtool()) {
      process.stderr.write('promtool not installed: alert unit tests checked for coverage only\n');
      return;
    }
    const test = promtool(['test', 'rules', ALERT_TESTS]);
    expect(test.output).toContain('SUCCESS');
    expect(test.status).toBe(0);
  });

  it('gives every alert a severity and a runbook that exists and names the alert', () => {
    const rules = alertRules();
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        'VoiceQueueBacklog',
        'VoiceQueueWaitTooLong',
        'VoiceAllocationErrorRate',
        'VoiceReclaimFailing',
        'VoiceAllocationsStuck',
        'VoiceProviderBreakerOpen',
        'VoiceDeadLetters',
        'VoiceCloneBudgetBurnRate',
        'VoiceCloneBudgetExhausted',
        'VoiceSlotsTargetDown',
        'VoiceHttpServerErrors',
        'VoiceWebhookBacklogGrowing',
      ]),
    );
    for (const { alert, block } of rules) {
      expect({ alert, severity: /severity: (critical|warning|info)\b/.test(block) }).toEqual({
        alert,
        severity: true,
      });
      const url = /runbook_url: (\S+)/.exec(block)?.[1] ?? '';
      expect({ alert, url }).toEqual({
        alert,
        url: expect.stringMatching(/^docs\/runbooks\/.+\.md$/),
      });
      const runbook = join(ROOT, url);
      expect({ alert, exists: existsSync(runbook) }).toEqual({ alert, exists: true });
      expect(readFileSync(runbook, 'utf8')).toContain(`\`${alert}\``);
    }
  });

  it('has a dashboard whose every query is valid PromQL on the chosen data source', () => {
    const panels = dashboardPanels().filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(10);
    const exprs = panels.flatMap((p) => {
      expect({ panel: p.title, uid: p.datasource?.uid }).toEqual({
        panel: p.title,
        uid: '${datasource}',
      });
      expect(p.targets?.length).toBeGreaterThan(0);
      return (p.targets ?? []).map((t) => t.expr);
    });
    // Grafana's variables are not PromQL; replace them as Grafana would before checking.
    const rules = exprs.map((expr, i) => {
      const promql = expr.replaceAll('$__rate_interval', '5m').replaceAll('$provider', '.*');
      return `      - record: dashboard:panel_${i}\n        expr: ${JSON.stringify(promql)}`;
    });
    const dir = mkdtempSync(join(tmpdir(), 'vs-dashboard-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      const check = checkRules(file);
      expect(check.problems).toEqual([]);
      expect(check.rules).toBe(exprs.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
