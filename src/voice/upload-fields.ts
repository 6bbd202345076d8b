import { z } from 'zod';
import { PROVIDER_NAMES } from '../config/app-config';

export const uploadFieldsSchema = z.object({
  name: z
    .string()
    .trim()
    .normalize('NFC')
    .min(1, 'name is required')
    .max(100, 'name is at most 100 characters')
    // Control and format characters (bidi overrides, zero-width spaces) and line separators make
    // names that display as something else; the joiners that emoji sequences need stay allowed.
    .regex(
      /^(?:(?![\u200c\u200d])[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|[\u200c\u200d])+$/u,
      'name must not contain control characters',
    ),
  provider: z.enum(PROVIDER_NAMES, { message: 'provider must be elevenlabs or cartesia' }),
  language: z
    .string()
    .regex(/^[a-z]{2,3}(-[A-Za-z]{2,4})?$/, 'language must be a language tag such as en or pt-BR')
    .optional(),
});
export type UploadFields = z.infer<typeof uploadFieldsSchema>;
