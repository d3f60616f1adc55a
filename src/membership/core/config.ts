import { MembershipConfigError } from './errors.js';
/** Timings and limits of the gossip protocol. All durations are in milliseconds. */
export interface ProtocolConfig {
  /** Time between two failure probes started by this member. */
  probeIntervalMs: number;
  /** How long a direct ping waits for its ack before indirect pings are sent. */
  probeTimeoutMs: number;
  /** Number of members asked to ping a target that missed its direct ack (the k of SWIM). */
  indirectChecks: number;
  /** Broadcasts are sent retransmitMult × ⌈log10(n+1)⌉ times. */
  retransmitMult: number;
  /** Minimum suspicion timeout = suspicionMult × max(1, log10(n)) × probeInterval. */
  suspicionMult: number;
  /** Maximum suspicion timeout = suspicionMaxTimeoutMult × minimum; confirmations shrink it. */
  suspicionMaxTimeoutMult: number;
  /** Time between full state exchanges with a random member (0 turns them off). */
  pushPullIntervalMs: number;
  /** Time between two gossip rounds. */
  gossipIntervalMs: number;
  /** Members picked per gossip round. */
  gossipNodes: number;
  /** How long a dead member still receives gossip, so that it can learn it was declared dead. */
  gossipToTheDeadMs: number;
  /** Upper bound of the local-health multiplier (Lifeguard); 1 turns it off. */
  awarenessMaxMultiplier: number;
  /** Time between attempts to reach one failed member again (heals partitions). */
  reconnectIntervalMs: number;
  /** How long a failed member is kept (and retried) before it is forgotten. */
  reconnectTimeoutMs: number;
  /** How long a member that left is remembered, so that old news cannot revive it. */
  tombstoneTimeoutMs: number;
  /** Time after which a dead member's name may be claimed from another address (0: never). */
  deadNodeReclaimMs: number;
  /** Timeout of one TCP state exchange (connect, write, read). */
  streamTimeoutMs: number;
  /** First delay between join attempts; it doubles up to joinMaxBackoffMs. */
  joinBackoffMs: number;
  joinMaxBackoffMs: number;
  /** Join attempts over all seed addresses before join() gives up. */
  joinMaxAttempts: number;
  /** Largest UDP packet this member sends; larger ones received are dropped. */
  maxPacketBytes: number;
  /** Largest state exchange accepted over TCP. */
  maxStreamBytes: number;
}

const LAN: ProtocolConfig = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  pushPullIntervalMs: 30_000,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  gossipToTheDeadMs: 30_000,
  awarenessMaxMultiplier: 8,
  reconnectIntervalMs: 30_000,
  reconnectTimeoutMs: 24 * 3600_000,
  tombstoneTimeoutMs: 24 * 3600_000,
  deadNodeReclaimMs: 0,
  streamTimeoutMs: 10_000,
  joinBackoffMs: 1000,
  joinMaxBackoffMs: 30_000,
  joinMaxAttempts: 10,
  maxPacketBytes: 1400,
  maxStreamBytes: 8 * 1024 * 1024,
};

const LOCAL: ProtocolConfig = {
  ...LAN,
  probeIntervalMs: 200,
  probeTimeoutMs: 100,
  indirectChecks: 3,
  retransmitMult: 3,
  suspicionMult: 3,
  pushPullIntervalMs: 5000,
  gossipIntervalMs: 50,
  gossipToTheDeadMs: 5000,
  reconnectIntervalMs: 2000,
  reconnectTimeoutMs: 3600_000,
  tombstoneTimeoutMs: 3600_000,
  streamTimeoutMs: 1000,
  joinBackoffMs: 100,
  joinMaxBackoffMs: 2000,
};

/** Config presets, as memberlist's DefaultLANConfig / DefaultLocalConfig. */
export const membershipDefaults = {
  /** memberlist's LAN timings: probe every 1 s, gossip every 200 ms, push-pull every 30 s. */
  lan(): ProtocolConfig {
    return { ...LAN };
  },
  /** Fast timings for one machine and for tests: probe every 200 ms, gossip every 50 ms. */
  local(): ProtocolConfig {
    return { ...LOCAL };
  },
};

/** Throws MembershipConfigError naming the first field that makes no sense. */
export function validateProtocolConfig(c: ProtocolConfig): void {
  const positive: (keyof ProtocolConfig)[] = [
    'probeIntervalMs',
    'probeTimeoutMs',
    'retransmitMult',
    'suspicionMult',
    'suspicionMaxTimeoutMult',
    'gossipIntervalMs',
    'awarenessMaxMultiplier',
    'reconnectIntervalMs',
    'streamTimeoutMs',
    'joinBackoffMs',
    'joinMaxBackoffMs',
    'joinMaxAttempts',
  ];
  for (const k of positive) {
    if (!Number.isFinite(c[k]) || c[k] <= 0)
      throw new MembershipConfigError(`${k} must be > 0, got ${c[k]}`);
  }
  const nonNegative: (keyof ProtocolConfig)[] = [
    'indirectChecks',
    'pushPullIntervalMs',
    'gossipNodes',
    'gossipToTheDeadMs',
    'reconnectTimeoutMs',
    'tombstoneTimeoutMs',
    'deadNodeReclaimMs',
  ];
  for (const k of nonNegative) {
    if (!Number.isFinite(c[k]) || c[k] < 0)
      throw new MembershipConfigError(`${k} must be >= 0, got ${c[k]}`);
  }
  if (c.probeTimeoutMs > c.probeIntervalMs) {
    throw new MembershipConfigError('probeTimeoutMs must not exceed probeIntervalMs');
  }
  if (c.suspicionMaxTimeoutMult < 1)
    throw new MembershipConfigError('suspicionMaxTimeoutMult must be >= 1');
  if (c.maxPacketBytes < 512 || c.maxPacketBytes > 65_000) {
    throw new MembershipConfigError('maxPacketBytes must be between 512 and 65000');
  }
  if (c.maxStreamBytes < c.maxPacketBytes) {
    throw new MembershipConfigError('maxStreamBytes must be at least maxPacketBytes');
  }
}

/** Broadcast retransmit limit: mult × ⌈log10(n+1)⌉ (memberlist's retransmitLimit). */
export function retransmitLimit(mult: number, n: number): number {
  return mult * Math.ceil(Math.log10(n + 1));
}

/** Minimum suspicion timeout: mult × max(1, log10(max(1, n))) × interval, in whole ms. */
export function suspicionTimeout(mult: number, n: number, intervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return Math.floor(mult * nodeScale * intervalMs);
}

/** Push-pull slows down past 32 members so that its total load stays flat (memberlist). */
export function pushPullScale(intervalMs: number, n: number): number {
  const threshold = 32;
  if (n <= threshold) return intervalMs;
  const mult = Math.ceil(Math.log2(n) - Math.log2(threshold)) + 1;
  return intervalMs * mult;
}
