import { parseArgs } from 'node:util';
import { loadConfig } from '../config/app-config';
import { signDevToken } from './auth.service';

// `npm run token -- --user alice [--scope "voices:read voices:write admin"] [--expires 12h]`
// prints a token signed with AUTH_JWT_SECRET. The token is the program's output, so it goes to
// stdout directly rather than through the logger.
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      user: { type: 'string' },
      scope: { type: 'string', default: 'voices:read voices:write' },
      expires: { type: 'string', default: '12h' },
    },
  });
  if (!values.user) {
    process.stderr.write(
      'usage: npm run token -- --user <id> [--scope "voices:read voices:write admin"]\n',
    );
    process.exit(2);
  }
  const config = loadConfig();
  process.stdout.write(
    `${await signDevToken(config.AUTH_JWT_SECRET, values.user, values.scope, values.expires)}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
