/**
 * Stops an entry point on a Node.js older than the service supports, with one plain line, before
 * anything else loads: on Node 20 the first symptom would otherwise be a stack trace from deep
 * inside undici (`createZstdDecompress` is not a function). Imported first by every entry point;
 * imports nothing.
 */
export const MIN_NODE = '22.19.0';

/** The refusal for `version` (e.g. "20.20.2"), or null when it is new enough. */
export function unsupportedNode(version: string): string | null {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number);
  const [minMajor, minMinor] = MIN_NODE.split('.').map(Number);
  if (major > minMajor || (major === minMajor && minor >= minMinor)) return null;
  return (
    `voice-slots needs Node.js ${MIN_NODE} or later; this is ${version}. ` +
    'Run it through npm (npm start, npm test), which uses the project’s own Node from `npm ci`.'
  );
}

const refusal = unsupportedNode(process.versions.node);
if (refusal) {
  process.stderr.write(`${refusal}\n`);
  process.exit(1);
}
