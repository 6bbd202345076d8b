import { z } from 'zod';
import type { Dialect } from './dialect';
import { requestId } from './dialect';
import type { StoredVoice } from './sandbox-state';

/** ElevenLabs as PROVIDERS.md describes it, under /elevenlabs. */

export const elevenLabs: Dialect = {
  route(method, path) {
    if (method === 'POST' && path === '/v1/voices/add') return { op: 'create' };
    if (method === 'GET' && path === '/v2/voices') return { op: 'list' };
    if (method === 'GET' && path === '/v1/user/subscription') return { op: 'account' };
    const m = /^\/v1\/voices\/([^/]+)$/.exec(path);
    if (m && m[1] !== 'add') {
      const id = decodeURIComponent(m[1]);
      if (method === 'GET') return { op: 'get', id };
      if (method === 'DELETE') return { op: 'delete', id };
    }
    return null;
  },
  authorized(req) {
    return req.headers['xi-api-key'] ? null : this.error(401, 'invalid_api_key', 'Invalid API key');
  },
  error(status, code, message, headers) {
    return { status, json: { detail: { status: code, message } }, headers };
  },
  throttleCode: 'too_many_concurrent_requests',
  handle(sb, op, id, url, upload) {
    const store = sb.store('elevenlabs');
    switch (op) {
      case 'create': {
        const missing: Array<{ loc: string[]; msg: string; type: string }> = [];
        const name = upload?.fields.get('name');
        const files = (upload?.files ?? []).filter(
          (f) => f.field === 'files' || f.field === 'files[]',
        );
        if (!name) missing.push({ loc: ['body', 'name'], msg: 'Field required', type: 'missing' });
        if (files.length === 0) {
          missing.push({ loc: ['body', 'files'], msg: 'Field required', type: 'missing' });
        }
        let labels: Record<string, string> = {};
        const rawLabels = upload?.fields.get('labels');
        if (rawLabels) {
          const parsed = z.record(z.string(), z.string()).safeParse(safeJson(rawLabels));
          if (parsed.success) labels = parsed.data;
          else
            missing.push({ loc: ['body', 'labels'], msg: 'Invalid JSON map', type: 'value_error' });
        }
        if (missing.length > 0 || !name) return { status: 422, json: { detail: missing } };
        if (files.some((f) => f.size === 0)) {
          return this.error(400, 'invalid_file', 'An uploaded file is empty');
        }
        const limit = sb.limit('elevenlabs');
        if (sb.held('elevenlabs') >= limit) {
          store.stats.voiceLimitReachedCount++;
          return this.error(
            400,
            'voice_limit_reached',
            `You have reached your maximum amount of custom voices (${limit} / ${limit})`,
          );
        }
        if (!sb.spendClone()) {
          store.stats.budgetRefusedCount++;
          const b = sb.cloneBudgetView();
          return this.error(
            403,
            'voice_add_edit_limit_reached',
            `You have reached your monthly limit of voice add/edit operations (${b.used} / ${b.limit}). ` +
              'It resets at the start of your next billing cycle.',
          );
        }
        const bytes = files.reduce((n, f) => n + f.size, 0);
        const voice = sb.addVoice('elevenlabs', {
          name,
          description: upload?.fields.get('description') ?? '',
          labels,
          category: 'cloned',
          language: null,
          sampleBytes: bytes,
          foreign: false,
          files: files.map((f) => ({ name: f.filename, mimeType: f.mimeType, size: f.size })),
        });
        store.stats.createCount++;
        return { status: 200, json: { voice_id: voice.id, requires_verification: false } };
      }
      case 'delete': {
        if (!id || !sb.deleteByApi('elevenlabs', id)) {
          // Old envelope and status 400 here, new envelope and 404 on get: as seen in the wild.
          return this.error(
            400,
            'voice_not_found',
            `A voice with the voice_id ${id} was not found.`,
          );
        }
        store.stats.deleteCount++;
        return { status: 200, json: { status: 'ok' } };
      }
      case 'get': {
        const v = id ? store.voices.get(id) : undefined;
        if (!v) {
          return {
            status: 404,
            json: {
              detail: {
                type: 'not_found',
                code: 'voice_not_found',
                message: `A voice with the voice_id ${id} was not found.`,
                request_id: requestId(),
              },
            },
          };
        }
        return { status: 200, json: elevenLabsVoice(v) };
      }
      case 'list': {
        const q = url.searchParams;
        const pageSize = Number(q.get('page_size') ?? '10');
        if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
          return {
            status: 422,
            json: {
              detail: [
                {
                  loc: ['query', 'page_size'],
                  msg: 'Input should be less than or equal to 100',
                  type: 'less_than_equal',
                },
              ],
            },
          };
        }
        let after = 0;
        const token = q.get('next_page_token');
        if (token) {
          const seq = decodeToken(token);
          if (seq === null) return this.error(400, 'invalid_page_token', 'Invalid next_page_token');
          after = seq;
        }
        const category = q.get('category');
        const search = q.get('search')?.toLowerCase();
        const matching = [...store.voices.values()]
          .filter((v) => !category || v.category === category)
          .filter(
            (v) =>
              !search ||
              [v.name, v.description, v.category, ...Object.values(v.labels)].some((s) =>
                s.toLowerCase().includes(search),
              ),
          )
          .sort((a, b) => a.seq - b.seq);
        const rest = matching.filter((v) => v.seq > after);
        const page = rest.slice(0, pageSize);
        const hasMore = rest.length > page.length;
        return {
          status: 200,
          json: {
            voices: page.map(elevenLabsVoice),
            has_more: hasMore,
            total_count: matching.length,
            next_page_token: hasMore ? encodeToken(page[page.length - 1].seq) : null,
          },
        };
      }
      case 'account': {
        const budget = sb.cloneBudgetView();
        return {
          status: 200,
          json: {
            tier: 'sandbox',
            status: 'active',
            character_count: 0,
            character_limit: 1_000_000,
            can_use_instant_voice_cloning: true,
            can_use_professional_voice_cloning: false,
            voice_limit: sb.limit('elevenlabs'),
            voice_slots_used: sb.held('elevenlabs'),
            professional_voice_limit: 0,
            voice_add_edit_counter: budget.used,
            max_voice_add_edits: budget.limit,
            next_character_count_reset_unix: Math.floor(Date.parse(budget.resetsAt) / 1000),
          },
        };
      }
    }
  },
};

function elevenLabsVoice(v: StoredVoice): unknown {
  return {
    voice_id: v.id,
    name: v.name,
    category: v.category,
    description: v.description,
    labels: v.labels,
    created_at_unix: Math.floor(v.createdAtMs / 1000),
    is_owner: true,
    samples: v.files.map((f, i) => ({
      sample_id: `${v.id}-${i}`,
      file_name: f.name,
      mime_type: f.mimeType,
      size_bytes: f.size,
    })),
  };
}

function encodeToken(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString('base64url');
}

function decodeToken(token: string): number | null {
  const m = /^seq:(\d+)$/.exec(Buffer.from(token, 'base64url').toString());
  return m ? Number(m[1]) : null;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
