import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './service';

const run = promisify(execFile);

/** Binaries of the installed PostgreSQL (pg_config names their folder). */
async function bindir(): Promise<string> {
  const { stdout } = await run('pg_config', ['--bindir']);
  return stdout.trim();
}

/**
 * A private PostgreSQL cluster for suites that restart Postgres: the shared one on 5432 serves
 * every other suite running in parallel and must never be restarted by a test. The cluster lives
 * in a temporary folder owned by the `postgres` user (initdb and the server refuse to run as
 * root), listens on 127.0.0.1 on a free port with trust authentication, and is removed by stop().
 */
export class PrivatePostgres {
  private dir = '';
  private bin = '';
  port = 0;

  /** The URL of the cluster's `postgres` database, as TEST_PG_URL-style base plus a name. */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    this.bin = await bindir();
    this.port = await freePort();
    this.dir = mkdtempSync(join(tmpdir(), 'vs-pg-'));
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(this.dir, uid, gid);
    chmodSync(this.dir, 0o700);
    await this.asPostgres(join(this.bin, 'initdb'), [
      '-D',
      this.data,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
    ]);
    await this.serverUp();
  }

  /**
   * Stops the server the fast way (sessions are terminated, as in a real restart) and starts it
   * again after `downMs`.
   */
  async restart(downMs = 0): Promise<void> {
    await this.ctl(['stop', '-m', 'fast']);
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await this.serverUp();
  }

  async stop(): Promise<void> {
    if (!this.dir) return;
    await this.ctl(['stop', '-m', 'immediate']).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
    this.dir = '';
  }

  private get data(): string {
    return join(this.dir, 'data');
  }

  private async serverUp(): Promise<void> {
    // fsync off: the cluster is thrown away, and a restart must be quick on a busy machine.
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='${this.dir}' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
    await this.ctl(['start', '-w', '-t', '60', '-l', join(this.dir, 'log'), '-o', options]);
  }

  private ctl(args: string[]): Promise<unknown> {
    return this.asPostgres(join(this.bin, 'pg_ctl'), ['-D', this.data, ...args]);
  }

  private async asPostgres(command: string, args: string[]): Promise<void> {
    await run('runuser', ['-u', 'postgres', '--', command, ...args], {
      cwd: this.dir,
      timeout: 90_000,
    });
  }
}
