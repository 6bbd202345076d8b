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

const CONTAINERS: Record<string, { format: string; contentType: string }> = {
  wave: { format: 'wav', contentType: 'audio/wav' },
  mpeg: { format: 'mp3', contentType: 'audio/mpeg' },
  flac: { format: 'flac', contentType: 'audio/flac' },
  ogg: { format: 'ogg', contentType: 'audio/ogg' },
  matroska: { format: 'webm', contentType: 'audio/webm' },
  webm: { format: 'webm', contentType: 'audio/webm' },
  'mpeg-4': { format: 'm4a', contentType: 'audio/mp4' },
  m4a: { format: 'm4a', contentType: 'audio/mp4' },
};

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
    throw new UnreadableAudioError(err instanceof Error ? err.message : 'unreadable audio');
  } finally {
    stream.destroy();
  }
  const container = (meta.format.container ?? '').toLowerCase();
  const known = Object.entries(CONTAINERS).find(([k]) => container.startsWith(k))?.[1];
  if (!known)
    throw new UnreadableAudioError(`unsupported audio container: ${container || 'unknown'}`);
  const seconds = meta.format.duration;
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) {
    throw new UnreadableAudioError('the audio has no measurable duration');
  }
  return {
    format: known.format,
    contentType: known.contentType,
    durationMs: Math.round(seconds * 1000),
    sampleRate: meta.format.sampleRate ?? null,
    channels: meta.format.numberOfChannels ?? null,
  };
}
