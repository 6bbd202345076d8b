import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { AppConfig as AppConfigShape } from './app-config';

/**
 * The validated configuration as an injectable. An abstract class serves as both the type and the
 * DI token, so consumers write `constructor(private readonly config: AppConfig)`.
 */
export abstract class AppConfig {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface AppConfig extends AppConfigShape {}

@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: AppConfigShape): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: AppConfig, useValue: config }],
      exports: [AppConfig],
    };
  }
}
