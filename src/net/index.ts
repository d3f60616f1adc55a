// Public surface of net/: the RPC port multiplexer (gRPC and Raft on one port), the
// ClientHello reader it routes by, and the stream layers Raft peers connect over.
// Imports nothing of ours.
export {
  MAX_HELLO_BYTES,
  buildClientHello,
  readClientHello,
  type ClientHelloInfo,
  type ClientHelloResult,
  type HelloSpec,
} from './client-hello.js';
export {
  GRPC_ALPN,
  HTTP2_PREFACE,
  PortMux,
  PortMuxClosedError,
  RAFT_ALPN,
  RAFT_MAGIC,
  type ConnectionInfo,
  type ConnectionSink,
  type MuxLogger,
  type PortMuxOptions,
  type PortMuxStats,
  type Refusal,
  type RefusalReason,
} from './port-mux.js';
export {
  PeerAuthError,
  PeerDialError,
  PlainPeerStreamLayer,
  StreamLayerClosedError,
  TlsPeerStreamLayer,
  admitPeer,
  describeSubject,
  type PeerLogger,
  type PeerStream,
  type PeerStreamStats,
  type PeerTlsMaterial,
  type PlainPeerStreamOptions,
  type TlsPeerStreamOptions,
} from './peer-stream.js';
