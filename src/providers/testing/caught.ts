import { ProviderError } from '../provider-error';

/**
 * The ProviderError a call fails with; anything else (or success) fails the test. Plain throws
 * rather than expect(): files under testing/ are built into dist beside the code.
 */
export async function caught(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ProviderError) return err;
    throw err;
  }
  throw new Error('expected a ProviderError');
}
