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

  it('listens on loopback only while the published development secret is in use', () => {
    expect(loadConfig({}).listenHost).toBe('127.0.0.1');
    expect(loadConfig({ AUTH_JWT_SECRET: '' }).listenHost).toBe('127.0.0.1');
    // A real secret keeps the old default: every interface.
    expect(loadConfig({ AUTH_JWT_SECRET: 'r'.repeat(32) }).listenHost).toBeUndefined();
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.1.2.3', '[::1]'])
      expect(loadConfig({ HOST: host }).listenHost).toBe(host);
  });

  it('refuses the development secret on a non-loopback listener in any mode', () => {
    for (const NODE_ENV of ['development', 'test'])
      for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.com'])
        for (const secret of [{}, { AUTH_JWT_SECRET: DEV_JWT_SECRET }])
          expect(() => loadConfig({ NODE_ENV, HOST: host, ...secret })).toThrow(
            /AUTH_JWT_SECRET: the published development secret is refused on a non-loopback/,
          );
    expect(loadConfig({ HOST: '0.0.0.0', AUTH_JWT_SECRET: 'r'.repeat(32) }).listenHost).toBe(
      '0.0.0.0',
    );
  });

  it('refuses an HS256 secret shorter than 32 bytes', () => {
    expect(() => loadConfig({ AUTH_JWT_SECRET: 'x'.repeat(31) })).toThrow(
      /AUTH_JWT_SECRET: must be at least 32 bytes/,
    );
    expect(loadConfig({ AUTH_JWT_SECRET: 'x'.repeat(32) }).AUTH_JWT_SECRET).toHaveLength(32);
    // Bytes, not characters: 11 three-byte characters are 33 bytes.
    expect(loadConfig({ AUTH_JWT_SECRET: '€'.repeat(11) }).AUTH_JWT_SECRET).toBe('€'.repeat(11));
  });

  it('keeps the orphan sweep off samples whose upload may still insert its row', () => {
    expect(loadConfig({}).SAMPLE_ORPHAN_AGE_SECONDS).toBe(3600);
    expect(() => loadConfig({ SAMPLE_ORPHAN_AGE_SECONDS: '300' })).toThrow(
      /SAMPLE_ORPHAN_AGE_SECONDS: must exceed HTTP_REQUEST_TIMEOUT_SECONDS/,
    );
    expect(
      loadConfig({ SAMPLE_ORPHAN_AGE_SECONDS: '120', HTTP_REQUEST_TIMEOUT_SECONDS: '60' })
        .SAMPLE_ORPHAN_AGE_SECONDS,
    ).toBe(120);
  });

  it('requires https for provider base URLs and the JWKS in production', () => {
    const prod = { NODE_ENV: 'production', AUTH_JWT_SECRET: 'r'.repeat(32) };
    for (const name of ['ELEVENLABS_BASE_URL', 'CARTESIA_BASE_URL', 'AUTH_JWKS_URL'])
      expect(() => loadConfig({ ...prod, [name]: 'http://proxy.example/x' })).toThrow(
        new RegExp(`${name}: must be an https URL in production`),
      );
    expect(
      loadConfig({ ...prod, ELEVENLABS_BASE_URL: 'https://proxy.example/el' }).providers.elevenlabs
        .baseUrl,
    ).toBe('https://proxy.example/el');
    // Outside production a plain-http sandbox or proxy is fine.
    expect(loadConfig({ ELEVENLABS_BASE_URL: 'http://sandbox:4010/elevenlabs' })).toBeTruthy();
  });

  it('turns the sandbox off in production unless asked for', () => {
    const prod = loadConfig({
      NODE_ENV: 'production',
      AUTH_JWT_SECRET: 'a-real-secret-of-enough-length-32b',
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
        AUTH_JWT_SECRET: 'a-real-secret-of-enough-length-32b',
        WORKER_PROVIDERS: 'cartesia',
      }),
    ).toThrow(/WORKER_PROVIDERS/);
  });
});
