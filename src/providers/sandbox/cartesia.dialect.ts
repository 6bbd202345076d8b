import http from 'node:http';
import type { Dialect } from './dialect';
import { requestId } from './dialect';
import type { StoredVoice } from './sandbox-state';

/** Cartesia as PROVIDERS.md describes it, under /cartesia. */

export const cartesia: Dialect = {
  route(method, path) {
    if (method === 'POST' && path === '/voices/clone') return { op: 'create' };
    if (method === 'GET' && path === '/voices') return { op: 'list' };
    const m = /^\/voices\/([^/]+)$/.exec(path);
    if (m && m[1] !== 'clone') {
      const id = decodeURIComponent(m[1]);
      if (method === 'GET') return { op: 'get', id };
      if (method === 'DELETE') return { op: 'delete', id };
    }
    return null;
  },
  authorized(req) {
    const auth = req.headers.authorization;
    const bearer = typeof auth === 'string' && /^Bearer \S+/.test(auth);
    if (!bearer && !req.headers['x-api-key']) {
      return this.error(401, 'unauthorized', 'Missing or invalid API key');
    }
    if (!req.headers['cartesia-version']) {
      return this.error(400, 'missing_version', 'The Cartesia-Version header is required');
    }
    return null;
  },
  error(status, code, message, headers) {
    const title = http.STATUS_CODES[status] ?? 'Error';
    return {
      status,
      json: { error_code: code, title, message, request_id: requestId() },
      headers,
    };
  },
  throttleCode: 'concurrency_limited',
  handle(sb, op, id, url, upload) {
    const store = sb.store('cartesia');
    switch (op) {
      case 'create': {
        const name = upload?.fields.get('name');
        const language = upload?.fields.get('language');
        const clip = upload?.files.find((f) => f.field === 'clip');
        if (!name) return this.error(400, 'invalid_request', 'name is required');
        if (!clip) return this.error(400, 'invalid_request', 'clip is required');
        if (clip.size === 0) return this.error(400, 'invalid_request', 'clip is empty');
        if (!language) return this.error(400, 'invalid_request', 'language is required');
        const limit = sb.limit('cartesia');
        if (sb.held('cartesia') >= limit) {
          store.stats.voiceLimitReachedCount++;
          return this.error(
            400,
            'voice_limit_reached',
            `Sandbox voice limit reached (${limit} / ${limit})`,
          );
        }
        const voice = sb.addVoice('cartesia', {
          name,
          description: upload?.fields.get('description') ?? '',
          labels: {},
          category: 'cloned',
          language,
          sampleBytes: clip.size,
          foreign: false,
          files: [{ name: clip.filename, mimeType: clip.mimeType, size: clip.size }],
        });
        store.stats.createCount++;
        return { status: 200, json: cartesiaVoice(voice) };
      }
      case 'delete':
        if (!id || !sb.deleteByApi('cartesia', id))
          return this.error(404, 'not_found', 'Voice not found');
        store.stats.deleteCount++;
        return { status: 204 };
      case 'get': {
        const v = id ? store.voices.get(id) : undefined;
        return v
          ? { status: 200, json: cartesiaVoice(v) }
          : this.error(404, 'not_found', 'Voice not found');
      }
      case 'list': {
        const q = url.searchParams;
        const limit = Number(q.get('limit') ?? '10');
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
          return this.error(400, 'invalid_request', 'limit must be between 1 and 100');
        }
        let after = 0;
        const startingAfter = q.get('starting_after');
        if (startingAfter) {
          const seq = store.seqOf.get(startingAfter);
          if (seq === undefined)
            return this.error(400, 'invalid_request', 'unknown starting_after');
          after = seq;
        }
        // Every sandbox voice is the caller's own: is_owner=true and no filter answer the same.
        const rest = [...store.voices.values()]
          .filter((v) => v.seq > after)
          .sort((a, b) => a.seq - b.seq);
        const page = rest.slice(0, limit);
        const hasMore = rest.length > page.length;
        return {
          status: 200,
          json: {
            data: page.map(cartesiaVoice),
            has_more: hasMore,
            next_page: hasMore ? page[page.length - 1].id : null,
          },
        };
      }
      case 'account':
        return this.error(404, 'not_found', 'Not found');
    }
  },
};

function cartesiaVoice(v: StoredVoice): unknown {
  return {
    id: v.id,
    user_id: 'sandbox-user',
    name: v.name,
    description: v.description,
    language: v.language ?? 'en',
    is_public: false,
    is_owner: true,
    created_at: v.createdAt,
  };
}
