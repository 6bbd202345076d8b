import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, scriptExists } from '../support/deploy-files';

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
