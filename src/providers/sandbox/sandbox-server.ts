import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ProviderName } from '../../config/app-config';
import { type ForeignVoiceInput, SandboxError, type SandboxConfigPatch } from './control-schemas';
import { handleControl } from './control-routes';
import { handleProvider } from './provider-routes';
import { drain, send } from './sandbox-http';
import { Sandbox } from './sandbox-state';
import {
  SANDBOX_PROVIDERS,
  type SandboxConfigView,
  type SandboxOptions,
  type SandboxState,
  type SandboxVoice,
} from './sandbox.types';

/**
 * An in-memory stand-in for the ElevenLabs and Cartesia APIs, answering exactly what PROVIDERS.md
 * describes, so the real adapters run against it unchanged. ElevenLabs lives under /elevenlabs,
 * Cartesia under /cartesia, and /_sandbox/* lets tests (in this process or another) set limits,
 * latency and faults and read back what happened.
 */

// The sandbox's public surface stays importable from here, where startSandbox lives.
export {
  type CloneBudgetPatch,
  type FaultRates,
  type ForeignVoiceInput,
  type ProviderFaults,
  type SandboxConfigPatch,
  sandboxConfigPatchSchema,
} from './control-schemas';
export { HELD_HISTORY_MAX } from './sandbox-state';
export {
  SANDBOX_OPERATIONS,
  SANDBOX_PROVIDERS,
  type SandboxCloneBudgetView,
  type SandboxConfigView,
  type SandboxOperation,
  type SandboxOptions,
  type SandboxProviderState,
  type SandboxState,
  type SandboxVoice,
} from './sandbox.types';

export interface SandboxHandle {
  /** e.g. http://127.0.0.1:4010 */
  url: string;
  port: number;
  /** The base URL an adapter takes, e.g. http://127.0.0.1:4010/elevenlabs */
  baseUrl(provider: ProviderName): string;
  /** Same as PUT /_sandbox/config. Throws on an invalid patch. */
  setConfig(patch: SandboxConfigPatch): SandboxConfigView;
  config(): SandboxConfigView;
  /** Same as POST /_sandbox/reset: voices, faults and stats cleared, start options restored. */
  reset(): void;
  /** Same as GET /_sandbox/state. */
  state(): SandboxState;
  /** Same as POST /_sandbox/{provider}/foreign: a voice without our key, e.g. made by hand. */
  addForeignVoice(provider: ProviderName, input?: ForeignVoiceInput): SandboxVoice;
  /** Same as DELETE /_sandbox/{provider}/voices/{id}: a voice vanishing behind our back. */
  removeVoice(provider: ProviderName, id: string): boolean;
  /** Same as POST /_sandbox/reconciliation-mark: count keyed deletes from now on. */
  markReconciliation(): void;
  /**
   * Voices taking a slot over time: one entry per change (epoch ms, the count from then on),
   * starting with the count at the last reset; the latest HELD_HISTORY_MAX changes. Utilisation is
   * counted from this, at the provider, not from the service's own view.
   */
  heldOverTime(provider: ProviderName): ReadonlyArray<{ at: number; held: number }>;
  /** Stops listening and drops every connection, held ones included. */
  close(): Promise<void>;
}

/** Starts the sandbox. Resolves once it listens; `close()` stops it and drops held requests. */
export async function startSandbox(opts: SandboxOptions = {}): Promise<SandboxHandle> {
  const sb = new Sandbox(opts);
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const path = url.pathname;
    let work: Promise<void>;
    const provider = SANDBOX_PROVIDERS.find((p) => path === `/${p}` || path.startsWith(`/${p}/`));
    if (path.startsWith('/_sandbox/')) {
      work = handleControl(sb, path.slice('/_sandbox'.length), req, res);
    } else if (provider) {
      work = handleProvider(sb, provider, path.slice(provider.length + 1), url, req, res);
    } else {
      work = drain(req).then(() => send(res, { status: 404, text: 'Not Found' }));
    }
    work.catch((err: unknown) => {
      if (sb.closeSignal.aborted) {
        res.socket?.destroy();
      } else if (err instanceof SandboxError) {
        send(res, { status: err.status, json: { error: err.message, issues: err.issues } });
      } else {
        send(res, {
          status: 500,
          json: { error: err instanceof Error ? err.message : String(err) },
        });
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  let closed: Promise<void> | null = null;
  return {
    url,
    port: address.port,
    baseUrl: (provider) => `${url}/${provider}`,
    setConfig: (patch) => sb.setConfig(patch),
    config: () => sb.config(),
    reset: () => sb.reset(),
    state: () => sb.state(),
    addForeignVoice: (provider, input) => sb.addForeignVoice(provider, input),
    removeVoice: (provider, id) => sb.removeVoice(provider, id),
    markReconciliation: () => sb.markReconciliation(),
    heldOverTime: (provider) => sb.heldOverTime(provider),
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        sb.abort();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
