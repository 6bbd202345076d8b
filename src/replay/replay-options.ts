import { DEFAULT_BURST_SHARE } from '../policy/clone-budget';
import {
  DEFAULT_SERVICE_TUNING,
  type PolicyName,
  type ServiceTuning,
} from '../policy/reclaim-policy';

export interface ReplayOptions {
  policy: PolicyName;
  slots: number;
  pure: boolean;
  /** Clones per period; null: no budget. */
  budget: number | null;
  periodDays: number;
  leaseSeconds: number;
  minResidencySeconds: number;
  minIdleSeconds: number;
  cloneSeconds: number;
  reserveShare: number;
  burstShare: number;
  tuning: ServiceTuning;
}

export const DEFAULT_REPLAY_OPTIONS: Omit<ReplayOptions, 'policy' | 'slots'> = {
  pure: false,
  budget: null,
  periodDays: 30,
  leaseSeconds: 300,
  minResidencySeconds: 120,
  minIdleSeconds: 600,
  cloneSeconds: 5,
  reserveShare: 0.1,
  burstShare: DEFAULT_BURST_SHARE,
  tuning: DEFAULT_SERVICE_TUNING,
};
