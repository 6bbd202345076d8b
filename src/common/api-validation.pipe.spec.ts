import { IsString } from 'class-validator';
import { ActivateQuery } from '../voice/voice.dto';
import { ApiValidationPipe } from './api-validation.pipe';

/** A query DTO with a default value, which every request must get a copy of. */
class WaitQuery extends ActivateQuery {
  @IsString()
  flag = 'default';
}

class NeedsName {
  @IsString()
  name!: string;
}

describe('ApiValidationPipe', () => {
  const pipe = new ApiValidationPipe();
  const query = (metatype: new () => object) => ({ type: 'query' as const, metatype });

  it('gives each request with no query its own DTO instance, as the full pipe would', async () => {
    const first = (await pipe.transform({}, query(WaitQuery))) as WaitQuery;
    const second = (await pipe.transform(Object.create(null), query(WaitQuery))) as WaitQuery;
    expect(first).toBeInstanceOf(WaitQuery);
    expect(second).toBeInstanceOf(WaitQuery);
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    first.waitSeconds = 5;
    expect(((await pipe.transform({}, query(WaitQuery))) as WaitQuery).waitSeconds).toBe(undefined);
  });

  it('still validates queries with values, and refuses an empty input each time it is invalid', async () => {
    await expect(pipe.transform({ waitSeconds: '5' }, query(WaitQuery))).resolves.toMatchObject({
      waitSeconds: 5,
    });
    for (const bad of [{ waitSeconds: '31' }, { waitSeconds: 'x' }, { other: '1' }]) {
      await expect(pipe.transform(bad, query(WaitQuery))).rejects.toMatchObject({
        code: 'validation_failed',
      });
    }
    for (let i = 0; i < 2; i++) {
      await expect(pipe.transform({}, query(NeedsName))).rejects.toMatchObject({
        code: 'validation_failed',
      });
    }
  });
});
