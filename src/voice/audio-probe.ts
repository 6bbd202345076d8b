import type { Readable } from 'node:stream';

export interface AudioInfo {
  /** Container/codec family, lower case: wav, mp3, flac, ogg, webm, m4a ... */
  format: string;
  durationMs: number;
  sampleRate: number | null;
  channels: number | null;
  /** The MIME type that matches the bytes (sent to providers instead of the client's claim). */
  contentType: string;
}

export class UnreadableAudioError extends Error {}

/** What the leading bytes say the file is, by file-type's magic numbers. */
export interface SniffedType {
  ext: string;
  mime: string;
}

/**
 * The audio formats accepted, as file-type names them. WebM and MP4 are reported as video because
 * their magic numbers cannot tell; the probe then checks that there is an audio track.
 */
const ACCEPTED_TYPES = new Set(['wav', 'mp3', 'flac', 'ogg', 'oga', 'opus', 'webm', 'm4a', 'mp4']);

/**
 * Identifies a file from its bytes, never from what the client claimed. Returns null when it is not
 * one of the accepted audio formats (including when the bytes match nothing at all).
 */
export async function sniffAudio(stream: Readable): Promise<SniffedType | null> {
  // ESM-only, loaded on first use for the same reason as music-metadata below.
  const { fileTypeFromBuffer } = await import('file-type');
  try {
    // Every accepted format identifies itself within its first bytes; an ID3 tag longer than the
    // head makes file-type answer mp3 (which the probe then checks for real).
    const head = await readHead(stream, SNIFF_BYTES);
    const type = await fileTypeFromBuffer(head);
    return type && ACCEPTED_TYPES.has(type.ext) ? { ext: type.ext, mime: type.mime } : null;
  } catch (err) {
    if (err instanceof SniffReadError) throw err.cause;
    // A detector choking on hostile bytes means the same as no match: not a file we accept.
    return null;
  } finally {
    stream.destroy();
  }
}

const SNIFF_BYTES = 64 * 1024;

class SniffReadError extends Error {}

async function readHead(stream: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      chunks.push(buf);
      length += buf.length;
      if (length >= max) break;
    }
  } catch (err) {
    throw new SniffReadError('sample could not be read', { cause: err });
  }
  return Buffer.concat(chunks, length).subarray(0, max);
}

/**
 * music-metadata's container names, by parser: `WAVE`, `MPEG`, `FLAC`, `Ogg`, `EBML/webm` or
 * `EBML/matroska`, and for MP4 the file's brands joined by `/` (`M4A/isom/mp42`, `isom/iso2/mp41`).
 */
const CONTAINERS: { pattern: RegExp; format: string; contentType: string }[] = [
  { pattern: /^wave/, format: 'wav', contentType: 'audio/wav' },
  { pattern: /^mpeg$/, format: 'mp3', contentType: 'audio/mpeg' },
  { pattern: /^flac/, format: 'flac', contentType: 'audio/flac' },
  { pattern: /^ogg/, format: 'ogg', contentType: 'audio/ogg' },
  { pattern: /^(ebml\/)?(webm|matroska)/, format: 'webm', contentType: 'audio/webm' },
  {
    pattern: /^(m4a|m4b|f4a|mp4[12]?|isom|iso[2-9]|dash|3gp[4-9]|3g2a)(\/|$)/,
    format: 'm4a',
    contentType: 'audio/mp4',
  },
];

/** Far beyond any recording device; a header claiming more is corrupt or hostile. */
const MAX_SAMPLE_RATE = 768_000;
const MAX_CHANNELS = 32;

/**
 * Reads format, duration, sample rate and channels with a real audio parser (music-metadata),
 * streaming: only the headers (or, for VBR files, a scan) are read, never the whole file at once.
 */
export async function probeAudio(stream: Readable, sizeBytes: number): Promise<AudioInfo> {
  // Loaded on first use: music-metadata is ESM-only, and loading it lazily keeps modules that merely
  // import this file usable from CommonJS test runners.
  const { parseStream } = await import('music-metadata');
  let meta;
  try {
    meta = await parseStream(stream, { size: sizeBytes }, { duration: true, skipCovers: true });
  } catch (err) {
    // Not `instanceof Error`: parser errors may come from another realm (ESM under a test runner).
    throw new UnreadableAudioError(String((err as { message?: unknown })?.message ?? err));
  } finally {
    stream.destroy();
  }
  const container = (meta.format.container ?? '').toLowerCase();
  const known = CONTAINERS.find((c) => c.pattern.test(container));
  if (!known)
    throw new UnreadableAudioError(`unsupported audio container: ${container || 'unknown'}`);
  const seconds = meta.format.duration;
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) {
    throw new UnreadableAudioError('the audio has no measurable duration');
  }
  const { sampleRate, numberOfChannels: channels } = meta.format;
  // A header can claim anything; zero channels or an absurd rate is not a recording.
  if (sampleRate !== undefined && !(sampleRate > 0 && sampleRate <= MAX_SAMPLE_RATE)) {
    throw new UnreadableAudioError(`implausible sample rate: ${sampleRate}`);
  }
  if (channels !== undefined && !(channels >= 1 && channels <= MAX_CHANNELS)) {
    throw new UnreadableAudioError(`implausible channel count: ${channels}`);
  }
  return {
    format: known.format,
    contentType: known.contentType,
    durationMs: Math.round(seconds * 1000),
    sampleRate: sampleRate ?? null,
    channels: channels ?? null,
  };
}
