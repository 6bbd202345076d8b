import { isDatabaseUnavailable, whileDatabaseReturns } from './database-errors';

const pgError = (code: string) => Object.assign(new Error('x'), { code });

describe('isDatabaseUnavailable', () => {
  it('knows a restart, a refused or cut connection, wrapped or not', () => {
    expect(isDatabaseUnavailable(pgError('57P01'))).toBe(true);
    expect(isDatabaseUnavailable(pgError('ECONNREFUSED'))).toBe(true);
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    // TypeORM's QueryFailedError carries the driver's error.
    expect(isDatabaseUnavailable({ message: 'q', driverError: pgError('57P03') })).toBe(true);
  });

  it('does not take a wrong statement or a constraint for an outage', () => {
    expect(isDatabaseUnavailable(pgError('23505'))).toBe(false);
    expect(isDatabaseUnavailable(pgError('42P01'))).toBe(false);
    expect(isDatabaseUnavailable(new Error('boom'))).toBe(false);
  });
});

describe('whileDatabaseReturns', () => {
  it('runs again while Postgres is away, and answers once it is back', async () => {
    let calls = 0;
    const value = await whileDatabaseReturns(() => {
      calls++;
      return calls < 3 ? Promise.reject(pgError('57P01')) : Promise.resolve('ok');
    });
    expect([value, calls]).toEqual(['ok', 3]);
  });

  it('gives up after its budget, and never repeats other errors', async () => {
    let calls = 0;
    await expect(
      whileDatabaseReturns(() => {
        calls++;
        return Promise.reject(pgError('08006'));
      }, 250),
    ).rejects.toMatchObject({ code: '08006' });
    expect(calls).toBeGreaterThan(1);
    calls = 0;
    await expect(
      whileDatabaseReturns(() => {
        calls++;
        return Promise.reject(pgError('23505'));
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(calls).toBe(1);
  });
});
