import helmet from 'helmet';
import { constantHeaders, type HttpMiddleware } from './constant-headers';

/**
 * Paths that only ever answer JSON (or Prometheus text): the versioned API, including its
 * problem+json errors, the probes and the metrics. Everything else, Swagger UI at /docs and Bull
 * Board at /admin/queues among it, gets the full set for HTML documents; a path added later is
 * treated as a document until it is listed here.
 */
const API_PATH = /^\/(v\d+\/|health(\/|$|\?)|metrics($|\?))/i;
/** The authenticated API (every route under /v1 needs a token). */
const AUTHENTICATED_PATH = /^\/v\d+\//i;
// Case-insensitive like Express' routing (its default): /V1/voices reaches the same controller and
// must get the same headers.

/**
 * Headers that matter for a response no browser renders as a page, as the OWASP REST Security
 * Cheat Sheet lists them: a CSP that allows nothing and no framing, nosniff, HSTS, no referrer,
 * and Cross-Origin-Resource-Policy so other sites cannot read answers through no-cors requests.
 * The headers helmet adds for documents (opener policy, origin-agent clustering, DNS prefetch,
 * IE download and XSS-filter switches, Flash cross-domain policies) govern browsing contexts that
 * JSON never creates, so API answers leave them out: half the headers on every call.
 */
const API_HEADERS = helmet({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  },
  xFrameOptions: { action: 'deny' },
  crossOriginOpenerPolicy: false,
  originAgentCluster: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
});

/** helmet's defaults, for pages: Swagger UI and Bull Board. */
const DOCUMENT_HEADERS = helmet({
  contentSecurityPolicy: {
    useDefaults: true,
    directives: {
      // Swagger UI at /docs loads its scripts from 'self' and sets inline styles; helmet's
      // defaults allow both. Upgrading to https would break /docs on a plain-http port.
      upgradeInsecureRequests: null,
    },
  },
});

/** The security headers of every response, recorded once per kind (see constantHeaders). */
export function securityHeaders(): HttpMiddleware {
  const api = constantHeaders(API_HEADERS);
  const documents = constantHeaders(DOCUMENT_HEADERS);
  return (req, res, next) => {
    const url = req.url ?? '';
    // A user's voices and an admin's views must never sit in a browser's or a proxy's cache,
    // where the next user of the machine or the proxy could read them. ETags still answer 304 to
    // a client that sends If-None-Match itself.
    if (AUTHENTICATED_PATH.test(url)) res.setHeader('Cache-Control', 'no-store');
    (API_PATH.test(url) ? api : documents)(req, res, next);
  };
}
