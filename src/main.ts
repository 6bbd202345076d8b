import 'reflect-metadata';
import pino from 'pino';
import { ConfigError, loadConfig } from './config/app-config';
import { startApp } from './bootstrap';

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await startApp(config);
  const url = await app.getUrl();
  pino({ level: config.LOG_LEVEL }).info(
    { url: url.replace('[::1]', 'localhost'), roles: [...config.roles], docs: `${url}/docs` },
    'voice-slots listening',
  );
}

main().catch((err: unknown) => {
  const log = pino();
  if (err instanceof ConfigError) log.fatal(err.message);
  else log.fatal({ err }, 'start failed');
  process.exit(1);
});
