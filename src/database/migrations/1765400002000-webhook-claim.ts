import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes for taking due deliveries endpoint by endpoint (WebhooksRepository.claimDue): each
 * endpoint's oldest due deliveries, and the few it has in flight (leased), are read from an index
 * instead of ranking every pending delivery of every endpoint, so a receiver with a backlog of
 * thousands costs each round the same as one without.
 */
export class WebhookClaim1765400002000 implements MigrationInterface {
  name = 'WebhookClaim1765400002000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX webhook_deliveries_endpoint_due_idx
                     ON webhook_deliveries (endpoint_id, next_attempt_at, id) WHERE status = 'pending'`);
    await q.query(`CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (endpoint_id)
                     WHERE status = 'pending' AND lease_until IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX webhook_deliveries_leased_idx`);
    await q.query(`DROP INDEX webhook_deliveries_endpoint_due_idx`);
  }
}
