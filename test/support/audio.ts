import { makeWav } from './wav';

/**
 * Minimal but genuine files of the other accepted formats, built by hand so the suites need no
 * encoder: parsers read their duration from the headers and frames exactly as for a recording.
 */

/** MPEG-1 Layer III at 128 kbit/s, 44.1 kHz, joint stereo: silent frames of 417 bytes each. */
export function makeMp3(seconds: number): Buffer {
  const frames = Math.ceil((seconds * 44_100) / 1152);
  const frame = Buffer.alloc(417);
  frame.set([0xff, 0xfb, 0x90, 0x64]);
  return Buffer.concat(Array.from({ length: frames }, () => frame));
}

/** `fLaC` and a STREAMINFO block whose total sample count gives the duration. */
export function makeFlac(seconds: number, sampleRate = 16_000, channels = 1): Buffer {
  const buf = Buffer.alloc(4 + 4 + 34);
  buf.write('fLaC', 0);
  buf[4] = 0x80; // last metadata block, type STREAMINFO
  buf.writeUIntBE(34, 5, 3);
  const info = buf.subarray(8);
  info.writeUInt16BE(4096, 0);
  info.writeUInt16BE(4096, 2);
  // 20 bits sample rate, 3 bits channels-1, 5 bits bits-per-sample-1, 36 bits total samples.
  const packed =
    (BigInt(sampleRate) << 44n) |
    (BigInt(channels - 1) << 41n) |
    (15n << 36n) |
    BigInt(Math.round(seconds * sampleRate));
  info.writeBigUInt64BE(packed, 10);
  return buf;
}

/** Looks like a WAV to anything that reads the first bytes (`RIFF....WAVE`), then junk. */
export function makeWavHeaderWithJunk(junkBytes = 4000): Buffer {
  const junk = Buffer.alloc(junkBytes);
  for (let i = 0; i < junkBytes; i++) junk[i] = (i * 131 + 7) % 251;
  return Buffer.concat([makeWav(1).subarray(0, 12), junk]);
}

/** A WAV whose header promises `seconds` but whose data stops after `keptSeconds`. */
export function makeTruncatedWav(
  seconds: number,
  keptSeconds: number,
  sampleRate = 16_000,
): Buffer {
  return makeWav(seconds, sampleRate).subarray(0, 44 + Math.round(keptSeconds * sampleRate) * 2);
}
