import 'reflect-metadata';
import pino from 'pino';
import { ConfigError, loadConfig } from './config/app-config';
import { startApp } from './bootstrap';

async function main(): Promise<void> {
  const config = loadConfig();
  await startApp(config);
  const url = `http://localhost:${config.PORT}`;
  pino({ level: config.LOG_LEVEL }).info(
    { url, roles: [...config.roles], docs: `${url}/docs` },
    'voice-slots listening',
  );
}

main().catch((err: unknown) => {
  const log = pino();
  if (err instanceof ConfigError) log.fatal(err.message);
  else log.fatal({ err }, 'start failed');
  process.exit(1);
});
