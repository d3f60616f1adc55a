// The seeded membership simulator, for tests of the library and of what is built on it
// (kept out of the main barrel, as raft keeps its doubles in raft/testing).
export { SimCluster } from './sim-cluster.js';
export type { FalseFailure, RecordedEvent, SimMember, Violation } from './sim-cluster.js';
export { SimNetwork } from './sim-network.js';
export {
  runScenario,
  bounds,
  converged,
  falseFailureViolations,
  presetConfig,
  FALSE_FAILURES_PER_CUT_MEMBER,
  FALSE_FAILURES_SAME_SIDE,
} from './simulation.js';
export type { ScenarioOptions, ScenarioResult } from './simulation.js';
