// The Raft consensus library: a pure, deterministic core (`RaftCore`, no timers, I/O or
// imports) and a driver (`RaftNode`) that feeds it ticks, messages and storage.
//
// Numbers: log indexes and terms are plain JavaScript numbers, always safe integers
// (<= 2^53 - 1). The wire codec rejects anything else, so no value is ever converted
// silently. Node ids are non-empty strings; addresses are hints carried in the
// configuration.
export * from './core/index.js';
export { RaftNode } from './node/raft-node.js';
export type { RaftNodeOptions, LeaderChange, NodeStatus } from './node/raft-node.js';
export * from './node/errors.js';
export type {
  LogStorage,
  HardStateStorage,
  MetaSnapshotPort,
  SnapshotPort,
  SnapshotSink,
  StoredLog,
  Transport,
  WriteOptions,
} from './node/ports.js';
export type { WireMessage, SnapshotChunk, SnapshotAck } from './node/messages.js';
export { encodeMessage, decodeMessage, RaftCodecError, CODEC_VERSION } from './node/codec.js';
export {
  StreamTransport,
  FrameError,
  HandshakeError,
  TRANSPORT_VERSIONS,
  DEFAULT_GROUP,
} from './node/stream-transport.js';
export type {
  StreamLayer,
  PeerStream,
  StreamTransportOptions,
  StreamTransportStats,
  PeerTransportStats,
} from './node/stream-transport.js';
