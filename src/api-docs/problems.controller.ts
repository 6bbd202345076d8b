import { Controller, Get, Header, Param } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { ApiError } from '../common/problem';
import { isProblemCode, PROBLEM_TYPES } from '../common/problem-types';

/**
 * The pages behind problem `type` URIs: one short page per code, so the link in an error answer
 * opens an explanation. Public (no scopes): they describe codes, nothing about any voice. Only codes
 * of the registry are served, so nothing from the path is ever echoed into the page.
 */
@ApiExcludeController()
@Controller('problems')
export class ProblemsController {
  @Get(':code')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'public, max-age=86400')
  page(@Param('code') code: string): string {
    if (!isProblemCode(code)) throw new ApiError(404, 'not_found', 'No such problem type');
    return (
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${code}</title></head>` +
      `<body><h1><code>${code}</code></h1><p>${PROBLEM_TYPES[code]}</p>` +
      '<p>Every error of the voice-slots API is <code>application/problem+json</code> with a ' +
      'stable <code>code</code>; the full list is in the <a href="/docs">API reference</a> ' +
      '(schema <code>ProblemCode</code>).</p></body></html>'
    );
  }
}
