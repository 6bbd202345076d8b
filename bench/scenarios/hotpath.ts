import autocannon, { type Result } from 'autocannon';
import { randomUUID } from 'node:crypto';
import { freePort } from '../../test/support/service';
import { makeToken } from '../../test/support/token';
import { onCleanup, progress, sleep, spawnScript, waitUntil, type Machine } from '../lib/common';
import { check, info, mustEqual, type Mode, type ScenarioResult } from '../lib/report';
import { openSandbox, openWorld, SAMPLE_KEY, sandboxEnv, startService } from '../lib/world';

const CONNECTIONS = 50;

interface Load {
  requestsPerSecond: number;
  requests: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; average: number };
  non2xx: number;
  /** 2xx answers whose body was not the right one. */
  mismatches: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
}

/**
 * Scenario 3: activation of a ready voice whose lease has more than half to run (the path that
 * answers without a write) under autocannon, beside a bare NestJS route on Fastify (the service's
 * platform: like for like) and on Express (Nest's default, the service's platform before), all in
 * the same run.
 */
export async function hotpath(
  mode: Mode,
  machine: Machine,
  _outDir: string,
): Promise<ScenarioResult> {
  const started = Date.now();
  const seconds = mode === 'quick' ? 3 : 10;
  const warmSeconds = mode === 'quick' ? 1 : 3;
  const { world, dispose } = openWorld();
  const { sandbox, close } = await openSandbox({ latencyMs: 0 });
  try {
    progress(
      'hotpath: starting the bare NestJS apps (Fastify, Express) and the service (APP_ROLES=api)',
    );
    const bare = await startBareApp('fastify');
    const bareExpress = await startBareApp('express');
    const service = await startService(world, {
      ...sandboxEnv(sandbox),
      APP_ROLES: 'api',
      RATE_LIMIT_ACTIVATIONS_PER_MINUTE: '100000000',
      RATE_LIMIT_READS_PER_MINUTE: '100000000',
      RATE_LIMIT_WRITES_PER_MINUTE: '100000000',
    });
    // A ready voice as an allocation leaves it; the first activation writes its lease, the rest
    // find more than half of it left and answer from the read alone.
    const id = randomUUID();
    const userId = 'hot-user';
    await world.db((c) =>
      c.query(
        `INSERT INTO voices (id, user_id, name, provider, status, remote_voice_id, ready_at,
            last_used_at, sample_key, sample_content_type, sample_filename, sample_size_bytes,
            sample_sha256, sample_format, sample_duration_ms, sample_rate, sample_channels)
         VALUES ($1, $2, 'hot', 'elevenlabs', 'ready', 'bench-remote-voice', now(), now(), $3,
            'audio/wav', 'hot.wav', 96044, repeat('0', 64), 'wav', 3000, 16000, 1)`,
        [id, userId, SAMPLE_KEY],
      ),
    );
    const token = makeToken(userId, 'voices:read voices:write');
    const activateUrl = `${service.url}/v1/voices/${id}/activate`;
    const headers = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 2; i++) {
      const res = await fetch(activateUrl, { method: 'POST', headers });
      if (res.status !== 200)
        throw new Error(`activate answered ${res.status}: ${await res.text()}`);
    }
    const lease = await world.db(async (c) => {
      const { rows } = await c.query<{ left: number }>(
        `SELECT EXTRACT(EPOCH FROM lease_expires_at - now())::float8 AS left FROM voices WHERE id = $1`,
        [id],
      );
      return rows[0].left;
    });
    if (!(lease > 150)) throw new Error(`the lease has ${lease} s left; the hot path needs > 150`);

    const bareUrl = `${bare.url}/ping`;
    const bareExpressUrl = `${bareExpress.url}/ping`;
    // Checked on every answer (cheaply: the client shares the machine): the activation must name
    // this voice, ready, with its remote voice id; a fast wrong answer is no hot path.
    const bodies: Record<string, (body: string) => boolean> = {
      activate: (b) =>
        b.includes(`"id":"${id}"`) &&
        b.includes('"status":"ready"') &&
        b.includes('"remoteVoiceId":"bench-remote-voice"'),
      bare: (b) => b === '{"ok":true}',
      live: (b) => b.includes('"status":"ok"'),
    };
    const run = (label: string, url: string, method: string, s: number) =>
      autocannon({
        url,
        method,
        headers,
        connections: CONNECTIONS,
        duration: s,
        verifyBody: bodies[label],
      }).then((r) => summarise(label, r));
    progress(`hotpath: warm-up, ${warmSeconds} s each`);
    await run('bare', bareUrl, 'GET', warmSeconds);
    await run('bare', bareExpressUrl, 'GET', warmSeconds);
    await run('activate', activateUrl, 'POST', warmSeconds);
    progress(`hotpath: bare Nest-Fastify route, ${seconds} s at ${CONNECTIONS} connections`);
    const bareLoad = await run('bare', bareUrl, 'GET', seconds);
    progress(`hotpath: bare Nest-Express route, ${seconds} s at ${CONNECTIONS} connections`);
    const bareExpressLoad = await run('bare', bareExpressUrl, 'GET', seconds);
    progress(`hotpath: activation of a ready voice, ${seconds} s at ${CONNECTIONS} connections`);
    const hot = await run('activate', activateUrl, 'POST', seconds);
    // Diagnostic: the service's own hooks (helmet, CORS, request log, metrics, versioning)
    // on its cheapest route, no auth, database or rate limit.
    progress(`hotpath: the service's GET /health/live, ${seconds} s at ${CONNECTIONS} connections`);
    await run('live', `${service.url}/health/live`, 'GET', warmSeconds);
    const live = await run('live', `${service.url}/health/live`, 'GET', seconds);
    const writes = await world.db(async (c) => {
      const { rows } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM voice_events WHERE voice_id = $1 AND type = 'activated'`,
        [id],
      );
      return rows[0].n;
    });
    await bare.stop();
    await bareExpress.stop();
    const ratio = hot.requestsPerSecond / bareLoad.requestsPerSecond;
    const expressRatio = hot.requestsPerSecond / bareExpressLoad.requestsPerSecond;
    progress(
      `hotpath: activation ${hot.requestsPerSecond.toFixed(0)} req/s (p99 ${hot.latencyMs.p99} ms), ` +
        `bare Nest-Fastify ${bareLoad.requestsPerSecond.toFixed(0)} req/s (p99 ${bareLoad.latencyMs.p99} ms): ${ratio.toFixed(2)}, ` +
        `bare Nest-Express ${bareExpressLoad.requestsPerSecond.toFixed(0)} req/s (p99 ${bareExpressLoad.latencyMs.p99} ms): ${expressRatio.toFixed(2)}`,
    );
    const loads = {
      activation: hot,
      'bare Nest-Fastify': bareLoad,
      'bare Nest-Express': bareExpressLoad,
      'health/live': live,
    };
    const wrong = Object.entries(loads).map(([name, l]) => ({
      name,
      wrong: l.non2xx + l.mismatches + l.errors + l.timeouts,
      l,
    }));
    return {
      scenario: 'hotpath',
      mode,
      startedAt: new Date(started).toISOString(),
      durationSeconds: Math.round((Date.now() - started) / 1000),
      machine,
      params: {
        connections: CONNECTIONS,
        seconds,
        warmUpSeconds: warmSeconds,
        service: 'APP_ROLES=api, one voice, one user, RATE_LIMIT_ACTIVATIONS_PER_MINUTE=1e8',
        bare: 'NestJS 12 + Fastify (the service platform), GET /ping returning a constant, no middleware',
        bareExpress: 'NestJS 12 + Express, the same app',
        client: 'autocannon in the bench process, same machine',
      },
      results: {
        activation: hot,
        bare: bareLoad,
        bareExpress: bareExpressLoad,
        serviceHealthLive: live,
        ratio: Number(ratio.toFixed(3)),
        ratioExpress: Number(expressRatio.toFixed(3)),
        activationWritesDuringLoad: writes - 1,
      },
      checks: [
        ...wrong.map(({ name, wrong: n, l }) =>
          mustEqual(
            mode,
            'hotpath',
            `${name}: answers not 200 with the right body (non-2xx, wrong body, errors, timeouts)`,
            n,
            0,
            `${n} of ${l.requests} (${l.non2xx} / ${l.mismatches} / ${l.errors} / ${l.timeouts}; ` +
              `status ${Object.entries(l.statusCodes)
                .map(([code, c]) => `${code}×${c}`)
                .join(', ')})`,
          ),
        ),
        mustEqual(
          mode,
          'hotpath',
          'activation: Postgres writes during the load (a lease with over half left needs none)',
          writes - 1,
          0,
        ),
        check(mode, {
          scenario: 'hotpath',
          metric: 'activation req/s ÷ bare Nest-Fastify route req/s (like for like)',
          value: Number(ratio.toFixed(3)),
          display: `${ratio.toFixed(2)} (${hot.requestsPerSecond.toFixed(0)} vs ${bareLoad.requestsPerSecond.toFixed(0)} req/s)`,
          comparator: '>=',
          threshold: 0.5,
        }),
        info(
          'hotpath',
          'activation req/s ÷ bare Nest-Express route req/s (the platform before)',
          Number(expressRatio.toFixed(3)),
          `${expressRatio.toFixed(2)} (${hot.requestsPerSecond.toFixed(0)} vs ${bareExpressLoad.requestsPerSecond.toFixed(0)} req/s)`,
        ),
        info(
          'hotpath',
          "service's GET /health/live req/s ÷ bare Nest-Fastify route (middleware floor)",
          Number((live.requestsPerSecond / bareLoad.requestsPerSecond).toFixed(3)),
          `${(live.requestsPerSecond / bareLoad.requestsPerSecond).toFixed(2)} (${live.requestsPerSecond.toFixed(0)} req/s)`,
        ),
        info(
          'hotpath',
          'activation p99 latency (bare Nest-Fastify / Nest-Express p99)',
          hot.latencyMs.p99,
          `${hot.latencyMs.p99} ms (${bareLoad.latencyMs.p99} ms / ${bareExpressLoad.latencyMs.p99} ms)`,
        ),
      ],
    };
  } finally {
    await dispose();
    await close();
  }
}

function summarise(_label: string, r: Result): Load {
  return {
    requestsPerSecond: Math.round(r.requests.average),
    requests: r.requests.total,
    latencyMs: {
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
      average: r.latency.average,
    },
    non2xx: r.non2xx,
    mismatches: r.mismatches,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: Object.fromEntries(
      Object.entries(r.statusCodeStats).map(([code, v]) => [code, Number(v.count)]),
    ),
  };
}

/** A bare app as a child process of the same Node, through the same TypeScript loader. */
async function startBareApp(
  platform: 'fastify' | 'express',
): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const { child, output, exited } = spawnScript('bench/bare-app.ts', {
    PORT: String(port),
    PLATFORM: platform,
  });
  const stop = onCleanup(`bare ${platform} app`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
    }
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    `the bare ${platform} app`,
    async () => {
      if (child.exitCode !== null) throw new Error(`bare ${platform} app exited: ${output()}`);
      const res = await fetch(`${url}/ping`).catch(() => null);
      return res?.status === 200 ? true : undefined;
    },
    20_000,
    200,
  );
  return { url, stop };
}
