import { Module } from '@nestjs/common';
import { BreakerRepository } from './breaker.repository';
import { ProviderAccountsRepository } from './provider-accounts.repository';
import { ProviderRegistry } from './provider-registry';

@Module({
  providers: [ProviderRegistry, ProviderAccountsRepository, BreakerRepository],
  exports: [ProviderRegistry, ProviderAccountsRepository, BreakerRepository],
})
export class ProvidersModule {}
