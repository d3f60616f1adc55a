// In-memory ports, a cluster builder and the deterministic simulator, for tests of the
// library and of anything built on it.
export {
  MemoryLogStorage,
  MemoryHardStateStorage,
  MemoryStateMachine,
  MemoryNetwork,
  MemoryStorageError,
} from './memory.js';
export { TestCluster, ClusterTimeoutError, addressOf } from './cluster.js';
export type { ClusterOptions, ClusterMember } from './cluster.js';
export { runSimulation, SimViolation } from './sim.js';
export type { SimOptions, SimResult, SimStats } from './sim.js';
export { Rng } from './rng.js';
export { runLogStorageConformance, runHardStateConformance } from './conformance.js';
export type {
  StorageFixture,
  LogConformanceOptions,
  HardStateConformanceOptions,
} from './conformance.js';
export { CoreNetwork } from './interaction.js';
