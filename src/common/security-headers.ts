import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Paths that only ever answer JSON (or Prometheus text): the versioned API, including its
 * problem+json errors, the probes and the metrics. Everything else, Swagger UI at /docs and Bull
 * Board at /admin/queues among it, gets the full set for HTML documents; a path added later is
 * treated as a document until it is listed here.
 */
const API_PATH = /^\/(v\d+\/|health(\/|$|\?)|metrics($|\?))/i;
/** The authenticated API (every route under /v1 needs a token). */
const AUTHENTICATED_PATH = /^\/v\d+\//i;
// Case-insensitive although routes are not: /V1/voices is no route, and its 404 gets the same
// headers as the API's own answers.

/**
 * Headers that matter for a response no browser renders as a page, as the OWASP REST Security
 * Cheat Sheet lists them: a CSP that allows nothing and no framing, nosniff, HSTS, no referrer,
 * and Cross-Origin-Resource-Policy so other sites cannot read answers through no-cors requests.
 * The headers helmet adds for documents (opener policy, origin-agent clustering, DNS prefetch,
 * IE download and XSS-filter switches, Flash cross-domain policies) govern browsing contexts that
 * JSON never creates, so API answers leave them out: half the headers on every call.
 */
export const API_HEADERS: HelmetOptions = {
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
};

/** helmet's defaults, for pages: Swagger UI and Bull Board. */
export const DOCUMENT_HEADERS: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: true,
    directives: {
      // Swagger UI at /docs loads its scripts from 'self' and sets inline styles; helmet's
      // defaults allow both. Upgrading to https would break /docs on a plain-http port.
      upgradeInsecureRequests: null,
    },
  },
};

/**
 * helmet's middleware for each profile, made once: making one parses and validates the options
 * (CSP directives included), which @fastify/helmet's reply.helmet did again on every request.
 * The middleware still sets its headers per request, so a header that came to depend on the
 * request (a CSP nonce function) would still be computed for each.
 */
const API_MIDDLEWARE = helmet(API_HEADERS);
const DOCUMENT_MIDDLEWARE = helmet(DOCUMENT_HEADERS);

const middlewareOf = (url: string): ReturnType<typeof helmet> =>
  API_PATH.test(url) ? API_MIDDLEWARE : DOCUMENT_MIDDLEWARE;

const ignore = (): void => undefined;

/**
 * A user's voices and an admin's views must never sit in a browser's or a proxy's cache, where
 * the next user of the machine or the proxy could read them. Set on the Node response, so answers
 * a hook or the error handler sends carry it too.
 */
function noStore(url: string, res: ServerResponse): void {
  if (AUTHENTICATED_PATH.test(url)) res.setHeader('Cache-Control', 'no-store');
}

/**
 * The security headers of every response, by helmet's middleware on the Node response: the API
 * set or the document set, chosen by path (unmatched paths included, so a 404 gets the set of
 * what it would have been). Registered before the routes: its hook runs for every request the
 * router sees. One synchronous hook rather than @fastify/helmet's two (one of them async) and its
 * per-request helmet().
 */
export function registerSecurityHeaders(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', (req, reply, done) => {
    const url = req.raw.url ?? '';
    noStore(url, reply.raw);
    middlewareOf(url)(req.raw, reply.raw, ignore);
    done();
  });
}

/**
 * The same headers for what the router refuses before any hook runs (a malformed URL, an
 * over-long parameter): Fastify's frameworkErrors handler has no reply decorated by the plugin.
 */
export function frameworkErrorHeaders(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '';
  noStore(url, res);
  middlewareOf(url)(req, res, ignore);
}
