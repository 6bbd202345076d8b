import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROBLEM_TYPES } from './problem-types';

/** Every source file of the service (not its specs). */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts') ? [path] : [];
  });
}

describe('PROBLEM_TYPES', () => {
  it('names every code the service answers with, so the spec and the pages know each', () => {
    const written = new Set<string>();
    for (const file of sources(join(__dirname, '..'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/new ApiError\(\s*\d+,\s*'([a-z_]+)'/g)) written.add(m[1]);
    }
    // The codes problem.ts derives from statuses and framework errors.
    const problem = readFileSync(join(__dirname, 'problem.ts'), 'utf8');
    for (const m of problem.matchAll(/(?:code: |\d{3}: )'([a-z_]+)'/g)) written.add(m[1]);
    expect(written.size).toBeGreaterThan(10);
    expect([...written].filter((c) => !(c in PROBLEM_TYPES))).toEqual([]);
  });
});
