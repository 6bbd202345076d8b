import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { PROBLEM_CODES, type ProblemCode } from './problem-types';

/** RFC 9457 problem details, as every error of the API answers them (src/common/problem.ts). */
@ApiSchema({ name: 'Problem' })
export class ProblemDto {
  @ApiProperty({
    example: '/problems/voice_not_found',
    description: 'A page describing the code, relative to the service’s URL',
  })
  type!: string;
  @ApiProperty({ example: 'Not Found' }) title!: string;
  @ApiProperty({ example: 404 }) status!: number;
  @ApiProperty({ example: 'No such voice', description: 'Plain words; never a stack or secret' })
  detail!: string;
  @ApiProperty({ enum: PROBLEM_CODES, enumName: 'ProblemCode', example: 'voice_not_found' })
  code!: ProblemCode;
}
