import { ConfigError, DEV_JWT_SECRET, loadConfig } from './app-config';

describe('loadConfig', () => {
  it('gives a newcomer a working default configuration with the sandbox on', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect([...config.roles]).toEqual(['api', 'worker', 'scheduler']);
    expect(config.workerProviders).toEqual(['elevenlabs', 'cartesia']);
    expect(config.providers.elevenlabs.sandbox).toBe(true);
    expect(config.providers.cartesia.slotLimit).toBe(100);
    expect(config.WORKER_ALLOCATION_CONCURRENCY).toBe(8);
  });

  it('names every bad variable at once', () => {
    let message = '';
    try {
      loadConfig({
        PORT: 'eighty',
        APP_ROLES: 'api,chef',
        MAX_ATTEMPTS: '0',
        DATABASE_URL: 'nope',
        WORKER_ALLOCATION_CONCURRENCY: '1000',
      });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    for (const name of [
      'PORT',
      'APP_ROLES',
      'MAX_ATTEMPTS',
      'DATABASE_URL',
      'WORKER_ALLOCATION_CONCURRENCY',
    ])
      expect(message).toContain(name);
  });

  it('refuses the development JWT secret in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', AUTH_JWT_SECRET: DEV_JWT_SECRET })).toThrow(
      /AUTH_JWT_SECRET/,
    );
  });

  it('turns the sandbox off in production unless asked for', () => {
    const prod = loadConfig({
      NODE_ENV: 'production',
      AUTH_JWT_SECRET: 'a-real-secret-of-enough-length',
      ELEVENLABS_API_KEY: 'k',
    });
    expect(prod.providers.cartesia.sandbox).toBe(false);
    expect(prod.workerProviders).toEqual(['elevenlabs']);
    expect(prod.providers.elevenlabs.baseUrl).toBe('https://api.elevenlabs.io');
  });

  it('refuses a worker for a provider that cannot be reached', () => {
    expect(() =>
      loadConfig({
        NODE_ENV: 'production',
        AUTH_JWT_SECRET: 'a-real-secret-of-enough-length',
        WORKER_PROVIDERS: 'cartesia',
      }),
    ).toThrow(/WORKER_PROVIDERS/);
  });
});
