import { pickFault } from './faults';

describe('pickFault', () => {
  it("lets an operation's own rates win over `any`, field by field", () => {
    const faults = {
      any: { error5xx: 1, retryAfterSeconds: 3 },
      create: { error5xx: 0, rateLimit: 1 },
    };
    expect(pickFault(faults, 'create', 0.5)).toEqual({
      kind: 'rateLimit',
      rates: { error5xx: 0, rateLimit: 1, retryAfterSeconds: 3 },
    });
    expect(pickFault(faults, 'get', 0.5).kind).toBe('error5xx');
  });

  it('reads the rates as shares of one roll: at most one fault, none past their sum', () => {
    const faults = { list: { timeout: 0.1, rateLimit: 0.2, error5xx: 0.3, lostAnswer: 0.1 } };
    const kinds = [0, 0.15, 0.35, 0.65, 0.75].map((r) => pickFault(faults, 'list', r).kind);
    expect(kinds).toEqual(['timeout', 'rateLimit', 'error5xx', 'lostAnswer', null]);
    expect(pickFault({}, 'list', 0).kind).toBeNull();
  });
});
