import http from 'node:http';
import { storedFiles, voiceRows } from './support/hostile';
import { multipart, uploadForm } from './support/multipart';
import { ServiceProcess, TestWorld } from './support/service';
import { makeToken } from './support/token';

describe('an upload without a declared length', () => {
  const world = new TestWorld();
  const CAP = 1_000_000;
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await world.start({ MAX_SAMPLE_BYTES: String(CAP), LOG_LEVEL: 'error' });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  it('is refused soon after passing the cap, however long it goes on, leaving no file', async () => {
    const { body: head, contentType } = multipart(uploadForm(Buffer.alloc(0)), {
      terminate: false,
    });
    let sent = 0;
    const answer = await new Promise<{ status: number; body: string; sentAtAnswer: number }>(
      (resolve, reject) => {
        // No Content-Length: Node sends it chunked. The file part never ends.
        const req = http.request(`${service.url}/v1/voices`, {
          method: 'POST',
          headers: {
            'content-type': contentType,
            authorization: `Bearer ${makeToken('alice')}`,
          },
        });
        req.on('response', (res) => {
          const sentAtAnswer = sent;
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sentAtAnswer }));
          res.on('error', reject);
        });
        req.on('error', () => undefined); // the service hangs up on the rest: expected
        req.write(head.subarray(0, head.length - 2));
        const chunk = Buffer.alloc(64 * 1024, 1);
        const pump = (): void => {
          while (!req.destroyed && sent < 200 * CAP) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          if (!req.destroyed) reject(new Error(`sent ${sent} bytes without an answer`));
        };
        pump();
      },
    );
    expect(answer.status).toBe(413);
    expect((JSON.parse(answer.body) as { code: string }).code).toBe('sample_too_large');
    // Answered once the cap was passed, not after the client gave up (socket buffers aside).
    expect(answer.sentAtAnswer).toBeLessThan(20 * CAP);
    await new Promise((r) => setTimeout(r, 300));
    expect(storedFiles(world)).toEqual([]);
    expect(await voiceRows(world)).toEqual([]);
  }, 60_000);
});

describe('a slow upload', () => {
  const world = new TestWorld();
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await world.start({ UPLOAD_MIN_BYTES_PER_SECOND: '1000', LOG_LEVEL: 'error' });
  }, 60_000);
  afterAll(() => world.dispose(), 30_000);

  it('is cut with a clear error once a 10 s window brings less than the minimum rate', async () => {
    const { body: head, contentType } = multipart(uploadForm(Buffer.alloc(0)), {
      terminate: false,
    });
    let trickle: NodeJS.Timeout | undefined;
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${service.url}/v1/voices`, {
        method: 'POST',
        headers: { 'content-type': contentType, authorization: `Bearer ${makeToken('alice')}` },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', () => undefined);
      req.write(head.subarray(0, head.length - 2));
      // 100 bytes a second: a tenth of the minimum.
      trickle = setInterval(() => req.write(Buffer.alloc(100, 1)), 1_000);
    });
    clearInterval(trickle);
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'upload_too_slow', status: 408 });
    await new Promise((r) => setTimeout(r, 300));
    expect(storedFiles(world)).toEqual([]);
    expect(await voiceRows(world)).toEqual([]);
  }, 60_000);
});
