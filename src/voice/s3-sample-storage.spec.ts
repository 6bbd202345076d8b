import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { S3SampleStorage } from './s3-sample-storage';
import { sampleKeyOf, type ListedSample } from './sample-storage.port';

const A = sampleKeyOf('0a1b2c3d-0000-4000-8000-000000000001');
const B = sampleKeyOf('ff1b2c3d-0000-4000-8000-000000000002');
const C = sampleKeyOf('1c1b2c3d-0000-4000-8000-000000000003');
const OLD = new Date('2026-01-01T00:00:00Z');
const NEW = new Date('2026-01-01T02:00:00Z');

/** An S3 client whose `send` answers from `answer`; the commands it was sent are kept. */
function fakeClient(answer: (command: object) => unknown): { client: S3Client; sent: object[] } {
  const sent: object[] = [];
  const client = {
    send: (command: object) => {
      sent.push(command);
      // A listing that never ends fails here instead of hanging the suite.
      if (sent.length > 20) return Promise.reject(new Error('S3 called over and over'));
      return Promise.resolve(answer(command));
    },
  } as unknown as S3Client;
  return { client, sent };
}

async function all(storage: S3SampleStorage): Promise<ListedSample[]> {
  const out: ListedSample[] = [];
  for await (const page of storage.listSamples()) out.push(...page);
  return out;
}

describe('S3SampleStorage sweep listings', () => {
  it('lists every page of sample keys, leaving out keys the service did not write', async () => {
    const pages: Record<string, unknown> = {
      first: {
        IsTruncated: true,
        NextContinuationToken: 't2',
        Contents: [
          { Key: A, LastModified: OLD },
          { Key: 'backups/dump.sql', LastModified: OLD },
          { Key: `${A}.part`, LastModified: OLD },
        ],
      },
      t2: { IsTruncated: false, Contents: [{ Key: B, LastModified: NEW }] },
    };
    const { client, sent } = fakeClient((c) => {
      const input = (c as ListObjectsV2Command).input;
      return pages[input.ContinuationToken ?? 'first'];
    });

    const listed = await all(new S3SampleStorage({ bucket: 'samples' }, client));

    expect(listed).toEqual([
      { key: A, modifiedAt: OLD },
      { key: B, modifiedAt: NEW },
    ]);
    expect(sent.every((c) => c instanceof ListObjectsV2Command)).toBe(true);
    expect(sent).toHaveLength(2);
  });

  it('aborts only multipart uploads of sample keys begun before the cut-off, on every page', async () => {
    const { client, sent } = fakeClient((c) => {
      if (c instanceof AbortMultipartUploadCommand) return {};
      const input = (c as ListMultipartUploadsCommand).input;
      if (!input.KeyMarker)
        return {
          IsTruncated: true,
          NextKeyMarker: A,
          NextUploadIdMarker: 'u1',
          Uploads: [
            { Key: A, UploadId: 'u1', Initiated: OLD },
            { Key: 'other/thing', UploadId: 'u9', Initiated: OLD },
          ],
        };
      return {
        IsTruncated: false,
        Uploads: [
          { Key: B, UploadId: 'u2', Initiated: NEW },
          { Key: C, UploadId: 'u3', Initiated: OLD },
        ],
      };
    });
    const storage = new S3SampleStorage({ bucket: 'samples' }, client);

    expect(await storage.removeAbandonedWrites(new Date('2026-01-01T01:00:00Z'))).toBe(2);

    const aborted = sent
      .filter((c) => c instanceof AbortMultipartUploadCommand)
      .map((c) => c.input);
    expect(aborted).toEqual([
      { Bucket: 'samples', Key: A, UploadId: 'u1' },
      { Bucket: 'samples', Key: C, UploadId: 'u3' },
    ]);
    const listings = sent.filter((c) => c instanceof ListMultipartUploadsCommand);
    expect(listings[1].input).toMatchObject({
      KeyMarker: A,
      UploadIdMarker: 'u1',
    });
  });

  it('passes a failed delete on to the caller, which keeps the removal pending', async () => {
    const client = {
      send: (c: object) =>
        c instanceof DeleteObjectCommand
          ? Promise.reject(new Error('SlowDown'))
          : Promise.resolve({}),
    } as unknown as S3Client;
    await expect(new S3SampleStorage({ bucket: 'samples' }, client).remove(A)).rejects.toThrow(
      'SlowDown',
    );
  });
});
