// Gossip membership (SWIM with Lifeguard): nodes find each other and notice failures
// without a central registry. The pure protocol core lives in core/, the socket driver
// in node/, and the seeded simulator in testing/.
export {
  Membership,
  JoinError,
  MembershipClosedError,
  BindError,
  AddressError,
  parseAddress,
} from './node/membership.js';
export type { MembershipOptions, MembershipStats } from './node/membership.js';
export { KeyError, parseKey } from './node/cipher.js';
export { StreamError } from './node/frames.js';
export { membershipDefaults, ConfigError } from './core/config.js';
export type { ProtocolConfig } from './core/config.js';
export { CodecError } from './core/codec.js';
export type { Tags, MemberStatus } from './core/codec.js';
export { SwimCore, NotStartedError } from './core/swim.js';
export type {
  CoreStats,
  MemberEvent,
  MemberEventType,
  MemberInfo,
  MemberView,
  CoreOptions,
  Output,
  OutgoingPacket,
  StreamRequest,
  JoinOutcome,
} from './core/swim.js';
export { SimCluster } from './testing/sim-cluster.js';
export { runScenario, bounds } from './testing/simulation.js';
export type { ScenarioOptions, ScenarioResult } from './testing/simulation.js';
