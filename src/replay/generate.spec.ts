import { generateRows, toCsv } from './generate';
import { parseTrace } from './trace';

describe('trace generator', () => {
  const options = { users: 200, voicesPerUser: 2, days: 7, seed: 42 };

  it('is reproducible from its seed, and another seed gives another trace', () => {
    expect(toCsv(generateRows(options))).toBe(toCsv(generateRows(options)));
    expect(toCsv(generateRows({ ...options, seed: 43 }))).not.toBe(toCsv(generateRows(options)));
  });

  it('writes a trace the replay accepts: sorted, within the days, with holds', () => {
    const trace = parseTrace(toCsv(generateRows(options)));
    expect(trace.hasHold).toBe(true);
    expect(trace.time.length).toBeGreaterThan(1000);
    for (let i = 1; i < trace.time.length; i++)
      expect(trace.time[i]).toBeGreaterThanOrEqual(trace.time[i - 1]);
    expect(trace.time[trace.time.length - 1]).toBeLessThan(7 * 86400);
    expect(trace.voices.length).toBeLessThanOrEqual(400);
  });

  it('is skewed (Zipf users), in sessions, with a daily rhythm and arrivals', () => {
    const rows = generateRows({ ...options, users: 1000, days: 14 });
    const perUser = new Map<number, number>();
    for (const r of rows) perUser.set(r.user, (perUser.get(r.user) ?? 0) + 1);
    const counts = [...perUser.values()].sort((a, b) => b - a);
    const top = counts.slice(0, Math.ceil(counts.length / 10)).reduce((a, b) => a + b, 0);
    // The busiest tenth of users make well over a third of the activations.
    expect(top / rows.length).toBeGreaterThan(0.35);
    // Sessions: most activations follow one of the same voice within minutes.
    const last = new Map<string, number>();
    let soon = 0;
    for (const r of rows) {
      const key = `${r.user}-${r.voice}`;
      const before = last.get(key);
      if (before !== undefined && r.time - before < 600) soon++;
      last.set(key, r.time);
    }
    expect(soon / rows.length).toBeGreaterThan(0.6);
    // Evenings busier than mornings.
    const hour = (h: number) =>
      rows.filter((r) => Math.floor((r.time % 86400) / 3600) === h).length;
    expect(hour(20)).toBeGreaterThan(2 * hour(8));
    // Users arrive over the trace: some first appear in the second week.
    const firstSeen = new Map<number, number>();
    for (const r of rows) if (!firstSeen.has(r.user)) firstSeen.set(r.user, r.time);
    expect([...firstSeen.values()].filter((t) => t > 7 * 86400).length).toBeGreaterThan(50);
  });
});
