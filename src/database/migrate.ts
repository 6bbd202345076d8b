import '../config/node-version';
import pino from 'pino';
import { loadDatabaseUrl } from '../config/app-config';
import { runMigrations } from './data-source';

// `npm run migrate`: production applies migrations as its own step, before new replicas start.
async function main(): Promise<void> {
  const log = pino({ name: 'migrate' });
  const applied = await runMigrations(loadDatabaseUrl());
  log.info({ applied }, applied.length ? 'migrations applied' : 'schema up to date');
}

main().catch((err: unknown) => {
  pino({ name: 'migrate' }).fatal({ err }, 'migration failed');
  process.exit(1);
});
