import '../../config/node-version';
import pino from 'pino';
import { loadSandboxConfig } from '../../config/sandbox-config';
import { startSandbox } from './sandbox-server';

/** `npm run sandbox`: the provider sandbox on its own, for local runs and out-of-process tests. */
async function main(): Promise<void> {
  const logger = pino({ name: 'provider-sandbox' });
  let config;
  try {
    config = loadSandboxConfig();
  } catch (err) {
    logger.fatal({ err }, 'invalid sandbox configuration');
    process.exitCode = 1;
    return;
  }
  const sandbox = await startSandbox(config);
  logger.info(
    {
      url: sandbox.url,
      elevenlabs: sandbox.baseUrl('elevenlabs'),
      cartesia: sandbox.baseUrl('cartesia'),
      voiceLimit: config.voiceLimit,
      latencyMs: config.latencyMs,
    },
    'provider sandbox listening',
  );
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'provider sandbox stopping');
    void sandbox.close().then(() => {
      process.exitCode = 0;
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

void main();
