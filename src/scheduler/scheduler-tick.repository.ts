import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

/** The scheduler's tick lock: one run of each timed task per period across replicas. */
@Injectable()
export class SchedulerTickRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /**
   * Claims this period's run of a timed task: true for exactly one caller per period, whatever the
   * number of scheduler replicas, without holding a connection while the task runs.
   */
  async claimTick(name: string, periodSeconds: number): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `INSERT INTO scheduler_ticks (name, last_run_at, runs) VALUES ($1, now(), 1)
       ON CONFLICT (name) DO UPDATE SET last_run_at = now(), runs = scheduler_ticks.runs + 1
         WHERE scheduler_ticks.last_run_at <= now() - make_interval(secs => $2 * 0.9)
       RETURNING name`,
      [name, periodSeconds],
    );
    return rows.length > 0;
  }
}
