/** Where Bull Board is mounted (admins only). */
export const QUEUE_BOARD_ROUTE = '/admin/queues';
