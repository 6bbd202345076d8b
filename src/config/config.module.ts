import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { AppConfig as AppConfigShape } from './app-config';

/**
 * The validated configuration as an injectable. An abstract class serves as both the type and the
 * DI token, so consumers write `constructor(private readonly config: AppConfig)`.
 */
/* eslint-disable @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type --
   the merge is the point: one name that is both the injection token and the typed shape. */
export abstract class AppConfig {}
export interface AppConfig extends AppConfigShape {}
/* eslint-enable @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type */

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
