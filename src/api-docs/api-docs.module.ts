import { Module } from '@nestjs/common';
import { ProblemsController } from './problems.controller';

/** The pages behind problem `type` URIs (the OpenAPI document itself is set up in bootstrap). */
@Module({ controllers: [ProblemsController] })
export class ApiDocsModule {}
