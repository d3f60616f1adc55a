// Gossip membership (SWIM with Lifeguard): nodes find each other and notice failures
// without a central registry. The pure protocol core lives in core/, the socket driver
// in node/; the seeded simulator is exported apart, from ./testing/index.js.
export { Membership, parseAddress } from './node/membership.js';
export type { MembershipOptions, MembershipStats } from './node/membership.js';
export type { MembershipDiagnostic, MembershipDiagnosticKind } from './node/membership.js';
export { parseKey } from './node/cipher.js';
export {
  MembershipAddressError,
  MembershipBindError,
  MembershipClosedError,
  MembershipCodecError,
  MembershipConfigError,
  MembershipJoinError,
  MembershipKeyError,
  MembershipNotStartedError,
  MembershipStreamError,
} from './core/errors.js';
export { membershipDefaults } from './core/config.js';
export type { ProtocolConfig } from './core/config.js';
export type { Tags, MemberStatus } from './core/codec.js';
export { SwimCore } from './core/swim.js';
export type {
  CoreDiagnostic,
  CoreDiagnosticKind,
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
