import { Logger } from '@nestjs/common';
import type { Readable } from 'node:stream';
import { ApiError } from '../common/problem';
import type { AppConfig } from '../config/config.module';
import { probeAudio, sniffAudio, UnreadableAudioError, type AudioInfo } from './audio-probe';
import type { SampleStorage } from './sample-storage.port';

/** A probe that takes longer than this is chewing on something that is not a recording. */
const PROBE_TIMEOUT_MS = 15_000;

export function storageUnavailable(): ApiError {
  return new ApiError(503, 'storage_unavailable', 'The sample could not be stored; try again');
}

/** What a stored upload is, read from its bytes: type by magic numbers, then a parse for duration. */
export class SampleInspector {
  private readonly logger = new Logger(SampleInspector.name);

  constructor(
    private readonly config: Pick<AppConfig, 'MIN_SAMPLE_SECONDS' | 'MAX_SAMPLE_SECONDS'>,
    private readonly storage: SampleStorage,
  ) {}

  /**
   * Decides what the stored sample is: 415 unless its bytes are an accepted audio format, 422 when
   * it cannot be parsed or its duration is out of bounds. Reads the sample back from storage as a
   * stream, twice (type, then duration), never whole.
   */
  async inspect(key: string, sizeBytes: number): Promise<AudioInfo> {
    const type = await sniffAudio(await this.open(key)).catch((err: unknown) => {
      this.logger.error({ err }, 'stored sample could not be read back');
      throw storageUnavailable();
    });
    if (!type) {
      throw new ApiError(
        415,
        'unsupported_media_type',
        'The file is not a supported audio format (wav, mp3, flac, ogg, webm, m4a)',
      );
    }
    const stream = await this.open(key);
    // Ending the stream ends the parse: a probe still busy after this long is chewing on junk.
    const timer = setTimeout(
      () => stream.destroy(new UnreadableAudioError('the audio took too long to read')),
      PROBE_TIMEOUT_MS,
    );
    let audio: AudioInfo;
    try {
      audio = await probeAudio(stream, sizeBytes);
    } catch (err) {
      // The parser's text names offsets, atoms and sometimes paths: for the log, not the client.
      this.logger.warn(
        { reason: err instanceof Error ? err.message : String(err) },
        'upload unreadable',
      );
      throw new ApiError(422, 'sample_unreadable', 'The audio could not be read');
    } finally {
      clearTimeout(timer);
    }
    if (type.mime.startsWith('video/') && audio.channels === null && audio.sampleRate === null) {
      throw new ApiError(415, 'unsupported_media_type', 'The file has no audio track');
    }
    const seconds = audio.durationMs / 1000;
    const { MIN_SAMPLE_SECONDS: min, MAX_SAMPLE_SECONDS: max } = this.config;
    if (seconds < min || seconds > max) {
      throw new ApiError(
        422,
        seconds < min ? 'sample_too_short' : 'sample_too_long',
        `The sample lasts ${seconds.toFixed(2)} s; accepted: ${min}–${max} s`,
      );
    }
    return audio;
  }

  private async open(key: string): Promise<Readable> {
    try {
      return await this.storage.open(key);
    } catch (err) {
      this.logger.error({ err }, 'stored sample could not be read back');
      throw storageUnavailable();
    }
  }
}
