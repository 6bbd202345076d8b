import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Flags for a headless browser on a closed network (no calls home, no sandbox as root). */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * A headless Chromium for the browser tests, with nothing to install beyond `npm ci`: the
 * system's Chromium when there is one (CHROMIUM_PATH, or Debian's /usr/bin/chromium), otherwise the
 * build that @sparticuz/chromium ships inside its npm package.
 */
export async function launchChromium(): Promise<Browser> {
  const system = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (existsSync(system)) return chromium.launch({ executablePath: system, args: ARGS });
  // The package also ships the few shared libraries its build needs beyond glibc (NSS, NSPR,
  // expat), built for Amazon Linux 2023, and unpacks them only where it recognises such a runtime
  // by this variable; saying so makes the browser independent of the distribution's packages.
  process.env.AWS_LAMBDA_JS_RUNTIME ??= 'nodejs22.x';
  const { default: bundled } = await import('@sparticuz/chromium');
  return chromium.launch({
    executablePath: await bundled.executablePath(),
    args: [...bundled.args, ...ARGS],
    // With the LD_LIBRARY_PATH the package just set for those libraries.
    env: { ...process.env },
  });
}
