import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig, PROVIDER_NAMES } from '../../src/config/app-config';
import { loadSandboxConfig } from '../../src/config/sandbox-config';
import { ROOT, ROUTES, scriptExists, unknownVariables } from '../support/deploy-files';

/** Keys of the sandbox's schema (src/config/sandbox-config.ts). */
const SANDBOX_VARIABLES = [
  'SANDBOX_PORT',
  'SANDBOX_HOST',
  'SANDBOX_ELEVENLABS_LIMIT',
  'SANDBOX_CARTESIA_LIMIT',
  'SANDBOX_VOICE_LIMIT',
  'SANDBOX_LATENCY_MS',
];

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
