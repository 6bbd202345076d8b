import { Module } from '@nestjs/common';
import { AppConfig } from '../config/config.module';
import { LocalSampleStorage } from './local-sample-storage';
import { S3SampleStorage } from './s3-sample-storage';
import { SampleStorage } from './sample-storage.port';
import { VoiceRepository } from './voice.repository';

/** Voice persistence and sample storage: shared by the voice use cases and the slot machinery. */
@Module({
  providers: [
    VoiceRepository,
    {
      provide: SampleStorage,
      inject: [AppConfig],
      useFactory: (config: AppConfig): SampleStorage =>
        config.STORAGE_DRIVER === 's3'
          ? new S3SampleStorage({
              bucket: config.S3_BUCKET ?? '',
              region: config.S3_REGION,
              endpoint: config.S3_ENDPOINT,
              forcePathStyle: config.S3_FORCE_PATH_STYLE,
            })
          : new LocalSampleStorage(config.STORAGE_DIR),
    },
  ],
  exports: [VoiceRepository, SampleStorage],
})
export class VoiceDataModule {}
