import type { FaultRates, ProviderFaults } from './control-schemas';
import type { SandboxOperation } from './sandbox.types';

export type FaultKind = 'error5xx' | 'rateLimit' | 'timeout' | 'lostAnswer';

/**
 * The fault for one request, from one roll `r` in [0, 1): at most one fault, so the rates read as
 * shares of requests. An operation's own rates win over `any`, field by field.
 */
export function pickFault(
  faults: ProviderFaults,
  op: SandboxOperation,
  r: number,
): { kind: FaultKind | null; rates: FaultRates } {
  const rates: FaultRates = { ...faults.any, ...faults[op] };
  let acc = 0;
  for (const kind of ['timeout', 'rateLimit', 'error5xx', 'lostAnswer'] as const) {
    acc += rates[kind] ?? 0;
    if (r < acc) return { kind, rates };
  }
  return { kind: null, rates };
}
