/** Queue depth (the service's rows) and voices held at the provider over time, sampled. */
export type Series = { t: number; queued: number; held: number }[];

export interface Panel {
  title: string;
  limit: number;
  series: Series;
}

const W = 760;
const H = 230;
const M = { left: 44, right: 16, top: 34, bottom: 34 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A step of 1, 2, 5 × 10^k giving about `count` ticks over `max`. */
function step(max: number, count: number): number {
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((k) => k * p).find((v) => v >= raw) ?? 10 * p;
}

function panel(p: Panel, y0: number, tMax: number, yMax: number): string {
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const x = (t: number) => Number((M.left + (t / tMax) * iw).toFixed(1));
  const y = (v: number) => Number((y0 + M.top + ih - (v / yMax) * ih).toFixed(1));
  const out: string[] = [];
  out.push(
    `<text x="${M.left}" y="${y0 + 20}" font-size="14" font-weight="bold">${esc(p.title)}</text>`,
  );
  const ys = step(yMax, 5);
  for (let v = 0; v <= yMax; v += ys) {
    out.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v}</text>`,
    );
  }
  const xs = step(tMax, 8);
  for (let t = 0; t <= tMax; t += xs) {
    out.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${y(0)}" y2="${y(0) + 4}" stroke="#444"/>`,
      `<text x="${x(t)}" y="${y(0) + 16}" font-size="11" text-anchor="middle">${t}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${y(0)}" y2="${y(0)}" stroke="#444"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${y(0)}" y2="${y(yMax)}" stroke="#444"/>`,
    `<text x="${W - M.right}" y="${y(0) + 30}" font-size="11" text-anchor="end">seconds</text>`,
    `<line x1="${M.left}" x2="${W - M.right}" y1="${y(p.limit)}" y2="${y(p.limit)}" stroke="#888" stroke-dasharray="5 4"/>`,
  );
  const line = (pick: (s: Series[number]) => number, color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${p.series
      .map((s) => `${x(s.t)},${y(pick(s))}`)
      .join(' ')}"/>`;
  out.push(
    line((s) => s.queued, '#e8710a'),
    line((s) => s.held, '#1a73e8'),
  );
  return out.join('\n');
}

/** Two small line charts, one per strategy, on the same axes so they compare at a glance. */
export function contendedChart(panels: Panel[]): string {
  const tMax = Math.max(1, ...panels.flatMap((p) => p.series.map((s) => s.t)));
  const yMax = Math.max(
    2,
    ...panels.flatMap((p) => [p.limit + 1, ...p.series.map((s) => Math.max(s.queued, s.held))]),
  );
  const height = H * panels.length + 30;
  const legendY = height - 12;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif">`,
    `<rect width="${W}" height="${height}" fill="#fff"/>`,
    ...panels.map((p, i) => panel(p, i * H, tMax, yMax)),
    `<line x1="${M.left}" x2="${M.left + 24}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="#e8710a" stroke-width="2"/>`,
    `<text x="${M.left + 30}" y="${legendY}" font-size="12">queue depth (queued voices)</text>`,
    `<line x1="${M.left + 230}" x2="${M.left + 254}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="#1a73e8" stroke-width="2"/>`,
    `<text x="${M.left + 260}" y="${legendY}" font-size="12">voices held at the provider (sampled)</text>`,
    `<line x1="${M.left + 530}" x2="${M.left + 554}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="#888" stroke-dasharray="5 4"/>`,
    `<text x="${M.left + 560}" y="${legendY}" font-size="12">slot limit</text>`,
    '</svg>',
    '',
  ].join('\n');
}
