import { Module } from '@nestjs/common';
import { ProviderAccountsRepository } from './provider-accounts.repository';
import { ProviderRegistry } from './provider-registry';

@Module({
  providers: [ProviderRegistry, ProviderAccountsRepository],
  exports: [ProviderRegistry, ProviderAccountsRepository],
})
export class ProvidersModule {}
