/** Where Bull Board is mounted (admins only). */
export const QUEUE_BOARD_ROUTE = '/admin/queues';

/**
 * A request for the board: its mount and everything under it, spelled exactly (routes are
 * case-sensitive, so /ADMIN/queues is no route and not the board's).
 */
export function isQueueBoardPath(url: string): boolean {
  if (!url.startsWith(QUEUE_BOARD_ROUTE)) return false;
  const next = url.charAt(QUEUE_BOARD_ROUTE.length);
  return next === '' || next === '/' || next === '?';
}
