import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Answer, Upload } from './sandbox-http';
import type { Sandbox } from './sandbox-state';
import type { SandboxOperation } from './sandbox.types';

/** How one provider's API looks: its paths, auth, error envelope and answers. */
export interface Dialect {
  /** Matches a path (without the provider prefix) to an operation and its voice id. */
  route(method: string, path: string): { op: SandboxOperation; id?: string } | null;
  authorized(req: IncomingMessage): Answer | null;
  error(status: number, code: string, message: string, headers?: Record<string, string>): Answer;
  throttleCode: string;
  handle(
    sb: Sandbox,
    op: SandboxOperation,
    id: string | undefined,
    url: URL,
    upload: Upload | null,
  ): Answer;
}

export function requestId(): string {
  return randomBytes(8).toString('hex');
}
