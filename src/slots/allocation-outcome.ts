/** How one allocation job ended. */
export type AllocationOutcome = 'ready' | 'adopted' | 'stale' | 'requeued' | 'failed';
