import { Global, Module } from '@nestjs/common';
import { TracingLifecycle } from './tracing-lifecycle';

/** The ground floor every role runs: the tracing SDK's start and orderly flush on shutdown. */
@Global()
@Module({ providers: [TracingLifecycle] })
export class ObservabilityModule {}
