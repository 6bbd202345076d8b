import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fewer bytes of WAL per delivery, as each delivery's writes share the WAL flushes that every
 * transition of the allocation waits for (at 1,000 deliveries/s they were some 2 kB each, half
 * the allocation's throughput lost to the flushes):
 * - webhook_deliveries_due_idx goes: since WebhookClaim1765400002000 the claim reads each
 *   endpoint's own index range, and nothing reads pending deliveries by due time alone.
 * - webhook_deliveries_leased_idx goes: the claim counts an endpoint's leases among its oldest due
 *   deliveries instead (WebhooksRepository.claimDue). With no index naming lease_until, and room
 *   left on each page (fillfactor), taking a lease is a heap-only update: one tuple, no index
 *   entries.
 */
export class WebhookLeaseHot1765600000000 implements MigrationInterface {
  name = 'WebhookLeaseHot1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX webhook_deliveries_due_idx`);
    await q.query(`DROP INDEX webhook_deliveries_leased_idx`);
    await q.query(`ALTER TABLE webhook_deliveries SET (fillfactor = 60)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE webhook_deliveries RESET (fillfactor)`);
    await q.query(`CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (endpoint_id)
                     WHERE status = 'pending' AND lease_until IS NOT NULL`);
    await q.query(`CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
                     WHERE status = 'pending'`);
  }
}
