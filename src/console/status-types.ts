// The GET /v1/status document as the page reads it (docs/console.md describes it).
export interface StatusServer {
  id: string;
  raftId?: string;
  rpcAddr: string;
  isLeader: boolean;
  suffrage?: 'voter' | 'learner';
  matchIndex?: number;
  lag?: number;
  state?: 'alive' | 'suspect' | 'dead' | 'left';
  lagging: boolean;
}

export interface ThroughputSample {
  t: number;
  producedPerSec: number;
  consumedPerSec: number;
  p50: number | null;
  p99: number | null;
}

export interface StatusDocument {
  node: string | null;
  time: string;
  leader: { id: string; addr: string } | null;
  raft: {
    role: string;
    term: number;
    commitIndex: number;
    appliedIndex: number;
    lastIndex: number;
  } | null;
  offsets: { start: string; end: string } | null;
  servers: StatusServer[];
  quorum: { voters: number; needed: number; reachable: number; ok: boolean };
  throughput: { intervalMs: number; samples: ThroughputSample[] } | null;
}

/** The JSON error body of the HTTP API. */
export interface ApiError {
  error?: string;
  reason?: string;
}
