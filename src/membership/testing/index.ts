// The seeded membership simulator, for tests of the library and of anything built on it.
export { SimCluster } from './sim-cluster.js';
export type { RecordedEvent, SimMember, Violation } from './sim-cluster.js';
export { bounds, runScenario } from './simulation.js';
export type { ScenarioOptions, ScenarioResult } from './simulation.js';
