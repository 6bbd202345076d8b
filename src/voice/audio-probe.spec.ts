import { Readable } from 'node:stream';
import {
  makeFlac,
  makeMp3,
  makeTruncatedWav,
  makeWavHeaderWithJunk,
} from '../../test/support/audio';
import { makeWav } from '../../test/support/wav';
import { probeAudio, sniffAudio, UnreadableAudioError } from './audio-probe';

const probe = (buf: Buffer) => probeAudio(Readable.from([buf], { objectMode: false }), buf.length);
const sniff = (buf: Buffer) => sniffAudio(Readable.from([buf], { objectMode: false }));

describe('sniffAudio', () => {
  it.each([
    ['wav', makeWav(1)],
    ['mp3', makeMp3(1)],
    ['flac', makeFlac(1)],
  ])('recognises %s from its bytes', async (ext, buf) => {
    expect((await sniff(buf))?.ext).toBe(ext);
  });

  it('refuses what is not audio, whatever it is called', async () => {
    expect(await sniff(Buffer.from('definitely not a wav file'.repeat(20)))).toBeNull();
    expect(await sniff(Buffer.from('%PDF-1.7\n'.padEnd(2000, 'x')))).toBeNull();
    // A PNG: a real format, but not audio.
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    expect(await sniff(Buffer.concat([png, Buffer.alloc(100)]))).toBeNull();
    expect(await sniff(Buffer.alloc(0))).toBeNull();
  });
});

describe('probeAudio', () => {
  it('reads format, duration, rate and channels of a WAV', async () => {
    expect(await probe(makeWav(3, 22_050, 2))).toEqual({
      format: 'wav',
      contentType: 'audio/wav',
      durationMs: 3000,
      sampleRate: 22_050,
      channels: 2,
    });
  });

  it('reads MP3 and FLAC', async () => {
    expect(await probe(makeMp3(3))).toMatchObject({ format: 'mp3', contentType: 'audio/mpeg' });
    expect((await probe(makeMp3(3))).durationMs).toBeGreaterThanOrEqual(3000);
    expect(await probe(makeFlac(2.5))).toMatchObject({ format: 'flac', durationMs: 2500 });
  });

  it('measures a truncated WAV by the bytes present, not by what its header promised', async () => {
    expect((await probe(makeTruncatedWav(3, 0.5))).durationMs).toBe(500);
  });

  it('refuses a WAV header followed by junk, and plain junk', async () => {
    await expect(probe(makeWavHeaderWithJunk())).rejects.toBeInstanceOf(UnreadableAudioError);
    await expect(probe(Buffer.from('not audio at all'.repeat(50)))).rejects.toBeInstanceOf(
      UnreadableAudioError,
    );
    await expect(probe(makeWav(3).subarray(0, 44))).rejects.toBeInstanceOf(UnreadableAudioError);
  });

  it('refuses headers that claim zero channels or an absurd sample rate', async () => {
    const noChannels = makeWav(1);
    noChannels.writeUInt16LE(0, 22);
    await expect(probe(noChannels)).rejects.toThrow(/channel/);
    const noRate = makeWav(1);
    noRate.writeUInt32LE(0, 24);
    noRate.writeUInt32LE(0, 28);
    await expect(probe(noRate)).rejects.toBeInstanceOf(UnreadableAudioError);
  });
});
