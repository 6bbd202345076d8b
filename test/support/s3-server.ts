import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/** The credentials s3rver accepts (it checks signatures against these). */
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/**
 * A real S3-compatible server (s3rver: the S3 REST API over HTTP, objects on disk) on a free
 * port, for the S3 storage driver's tests. It can be stopped and started again on the same port
 * and folder, so a test can make S3 unreachable and bring it back with its objects.
 */
export class S3TestServer {
  private readonly dir = mkdtempSync(join(tmpdir(), 'vs-s3-'));
  private server: S3rver | null = null;
  port = 0;

  constructor(readonly bucket = 'voice-samples') {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = new S3rver({
      address: '127.0.0.1',
      port: this.port,
      silent: true,
      directory: this.dir,
      configureBuckets: [{ name: this.bucket, configs: [] }],
    });
    const { port } = await this.server.run();
    this.port = port;
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = null;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The environment that puts the service's samples in this server's bucket. */
  env(): Record<string, string> {
    return {
      STORAGE_DRIVER: 's3',
      S3_BUCKET: this.bucket,
      S3_ENDPOINT: this.endpoint,
      S3_REGION: 'us-east-1',
      S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    };
  }

  /** Keys in the bucket now, read with the AWS SDK like any client would. */
  async keys(): Promise<string[]> {
    const client = new S3Client({
      endpoint: this.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: CREDENTIALS,
    });
    try {
      const page = await client.send(new ListObjectsV2Command({ Bucket: this.bucket }));
      return (page.Contents ?? []).map((o) => o.Key ?? '').sort();
    } finally {
      client.destroy();
    }
  }
}
