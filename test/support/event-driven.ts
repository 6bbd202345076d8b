import { until } from './cluster';
import { handOverWindow, readHandOvers, type Hold, type Protection } from './hand-over';
import type { TestWorld } from './service';

/** When hand-over is event-driven, a reclaimable slot is reclaimed, and a freed one claimed, within this. */
const HANDOVER_MS = 2_000;
/** After a fault is over, hand-over must be event-driven again within this. */
const RECOVERY_MS = 10_000;
/**
 * Hand-overs observed after each recovery's grace: their median within HANDOVER_MS (the issue's
 * "within 2 s, measured over several hand-overs"), and every one well inside the tick, so that
 * one claim slowed by the other suites on a 2-core CI machine is not mistaken for a fallback to
 * the scheduler (which is an hour away here, and is what the bug looked like).
 */
const HANDOVERS_MEASURED = 4;

/**
 * Waits until HANDOVERS_MEASURED reclaims and refills have happened past the grace after
 * `over` (the moment the fault ended), then checks every hand-over since `over`.
 */
export function eventDrivenCheck(
  world: () => TestWorld,
  protection: Protection,
  ofLostWorker: (h: Hold) => boolean,
) {
  return async (what: string, over: number): Promise<void> => {
    const graceUntil = over + RECOVERY_MS;
    const read = async () => {
      const h = await world().db((c) => readHandOvers(c, 'elevenlabs', protection));
      return handOverWindow(h, protection, over, graceUntil, Date.now(), ofLostWorker);
    };
    const measured = (w: Awaited<ReturnType<typeof read>>) =>
      Math.min(w.reclaimsAfterGrace, w.refillMs.length);
    let window: Awaited<ReturnType<typeof read>>;
    try {
      // No hand-over at all is the failure this waits out: the tick that would serve one is an
      // hour away. The wait bounds the test, not the service; the delays below are the check.
      window = await until(
        `${HANDOVERS_MEASURED} hand-overs after ${what}`,
        async () => {
          const w = await read();
          return measured(w) >= HANDOVERS_MEASURED ? w : null;
        },
        RECOVERY_MS + 30_000,
        250,
      );
    } catch (err) {
      process.stdout.write(`${what}: no event-driven hand-over: ${JSON.stringify(await read())}\n`);
      throw err;
    }
    process.stdout.write(
      `${what} (over at ${new Date(over).toISOString()}): reclaim past reclaimable (ms) ${JSON.stringify(window.reclaimLateMs)}; ` +
        `freed slot → claim (ms) ${JSON.stringify(window.refillMs)}; ` +
        `holds past lease ${JSON.stringify(window.overdueHolds)}\n`,
    );
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
    expect({
      what,
      medianReclaimWithin2s: median(window.reclaimLateMs) <= HANDOVER_MS,
      medianRefillWithin2s: median(window.refillMs) <= HANDOVER_MS,
      lateReclaims: window.reclaimLateMs.filter((ms) => ms > RECOVERY_MS),
      slowRefills: window.refillMs.filter((ms) => ms > RECOVERY_MS),
      holdsPastLease: window.overdueHolds.filter((x) => x.overdueMs > RECOVERY_MS),
    }).toEqual({
      what,
      medianReclaimWithin2s: true,
      medianRefillWithin2s: true,
      lateReclaims: [],
      slowRefills: [],
      holdsPastLease: [],
    });
  };
}
