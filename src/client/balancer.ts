// The `commitlog_leader` load-balancing policy, a grpc-js plug-in (the book's picker).
// Each call says where it may go in its metadata (ROUTE_HEADER):
// - `leader`: the leader's connection; while no leader is known or it is not
//   connected the call is queued (its deadline bounds the wait);
// - `any` (or no header): round-robin over the connected followers, else the leader,
//   else any connected member.
// The leader comes from the resolver (LEADER_ATTRIBUTE). A NOT_LEADER answer that names
// the leader moves `leader` calls there at once and asks for a fresh member list;
// UNAVAILABLE answers and lost connections ask for one too.
import * as grpc from '@grpc/grpc-js';

import { notLeaderHint } from './errors.js';
import { COMMITLOG_LB_POLICY, LEADER_ATTRIBUTE } from './resolver.js';

const {
  ConnectivityState: State,
  LeafLoadBalancer,
  PickResultType,
  UnavailablePicker,
  createChildChannelControlHelper,
  subchannelAddressToString,
} = { ...grpc.experimental, ConnectivityState: grpc.connectivityState };

type Endpoint = grpc.experimental.Endpoint;
type Leaf = InstanceType<typeof LeafLoadBalancer>;

/** Per-call metadata key naming where a call may go: `leader` or `any`. */
export const ROUTE_HEADER = 'x-commitlog-route';
export type Route = 'leader' | 'any';

export class CommitlogLoadBalancingConfig implements grpc.experimental.TypedLoadBalancingConfig {
  getLoadBalancerName(): string {
    return COMMITLOG_LB_POLICY;
  }
  toJsonObject(): object {
    return { [COMMITLOG_LB_POLICY]: {} };
  }
  static createFromJson(): CommitlogLoadBalancingConfig {
    return new CommitlogLoadBalancingConfig();
  }
}

function keyOf(endpoint: Endpoint): string {
  const first = endpoint.addresses[0];
  return first ? subchannelAddressToString(first) : '';
}

const QUEUE: grpc.experimental.PickResult = {
  pickResultType: PickResultType.QUEUE,
  subchannel: null,
  status: null,
  onCallStarted: null,
  onCallEnded: null,
};

/** What a picker needs of the balancer: a snapshot of connected members plus shared state. */
interface Snapshot {
  leader: Leaf | undefined;
  leaderReady: boolean;
  followers: Leaf[];
  othersConnecting: boolean;
}

class CommitlogPicker implements grpc.experimental.Picker {
  constructor(
    private readonly snap: Snapshot,
    private readonly balancer: CommitlogLoadBalancer,
  ) {}

  pick(args: grpc.experimental.PickArgs): grpc.experimental.PickResult {
    const route = args.metadata.get(ROUTE_HEADER)[0];
    const { leader, leaderReady, followers } = this.snap;
    if (route === 'leader') {
      return leader && leaderReady ? this.balancer.track(leader.getPicker().pick(args)) : QUEUE;
    }
    let chosen: Leaf | undefined;
    if (followers.length > 0) chosen = followers[this.balancer.nextIndex() % followers.length];
    else if (leader && leaderReady) chosen = leader;
    if (chosen) return this.balancer.track(chosen.getPicker().pick(args));
    if (this.snap.othersConnecting) return QUEUE;
    return new UnavailablePicker({
      details: `${COMMITLOG_LB_POLICY}: no member is reachable`,
    }).pick(args);
  }
}

export class CommitlogLoadBalancer implements grpc.experimental.LoadBalancer {
  private children = new Map<string, Leaf>();
  private leaderKey: string | undefined;
  private readonly childHelper: grpc.experimental.ChannelControlHelper;
  private lastError: string | null = null;
  private state: grpc.connectivityState = State.IDLE;
  /** Round-robin position: per channel (one balancer per channel), shared by its pickers. */
  private rr = 0;
  private updating = false;

  constructor(private readonly helper: grpc.experimental.ChannelControlHelper) {
    this.childHelper = createChildChannelControlHelper(helper, {
      updateState: (_state, _picker, errorMessage) => {
        if (errorMessage) this.lastError = errorMessage;
        this.recompute();
      },
    });
  }

  nextIndex(): number {
    return this.rr++;
  }

  /** Watches the call's outcome: NOT_LEADER and UNAVAILABLE refresh the member list. */
  track(result: grpc.experimental.PickResult): grpc.experimental.PickResult {
    if (result.pickResultType !== PickResultType.COMPLETE) return result;
    const inner = result.onCallEnded;
    return {
      ...result,
      onCallEnded: (code, details, metadata) => {
        inner?.(code, details, metadata);
        if (code === grpc.status.OK) return;
        const hint = notLeaderHint(metadata);
        if (!hint && code !== grpc.status.UNAVAILABLE) return;
        // At once, before the caller sees the error and retries: the retry must find
        // the new leader in the picker.
        this.onHint(hint?.leaderAddr);
      },
    };
  }

  private onHint(leaderAddr: string | undefined): void {
    const key =
      leaderAddr === undefined ? undefined : keyOf({ addresses: [addressOf(leaderAddr)] });
    if (key !== undefined && this.children.has(key) && this.leaderKey !== key) {
      this.leaderKey = key;
      this.recompute();
    }
    this.helper.requestReresolution();
  }

  updateAddressList(
    endpoints: grpc.experimental.StatusOr<Endpoint[]>,
    config: grpc.experimental.TypedLoadBalancingConfig,
    options: grpc.ChannelOptions,
    note: string,
  ): boolean {
    if (!(config instanceof CommitlogLoadBalancingConfig)) return false;
    if (!endpoints.ok) {
      if (this.children.size === 0) {
        this.setState(
          State.TRANSIENT_FAILURE,
          new UnavailablePicker(endpoints.error),
          endpoints.error.details,
        );
      }
      return true;
    }
    const next = new Map<string, Leaf>();
    this.updating = true;
    for (const endpoint of endpoints.value) {
      const key = keyOf(endpoint);
      if (key === '' || next.has(key)) continue;
      const existing = this.children.get(key);
      if (existing) {
        existing.updateEndpoint(endpoint, options);
        next.set(key, existing);
      } else {
        const leaf = new LeafLoadBalancer(endpoint, this.childHelper, options, note);
        next.set(key, leaf);
        leaf.startConnecting();
      }
    }
    for (const [key, leaf] of this.children) if (!next.has(key)) leaf.destroy();
    this.children = next;
    const leader: unknown = options[LEADER_ATTRIBUTE];
    this.leaderKey =
      typeof leader === 'string' ? keyOf({ addresses: [addressOf(leader)] }) : undefined;
    this.updating = false;
    if (endpoints.value.length === 0) {
      const message = `${COMMITLOG_LB_POLICY}: the member list is empty (${note})`;
      this.setState(State.TRANSIENT_FAILURE, new UnavailablePicker({ details: message }), message);
      return true;
    }
    this.recompute();
    return true;
  }

  private recompute(): void {
    if (this.updating) return;
    const leaves = [...this.children.entries()];
    const ready = (l: Leaf) => l.getConnectivityState() === State.READY;
    const leader = this.leaderKey === undefined ? undefined : this.children.get(this.leaderKey);
    const followers = leaves.filter(([k, l]) => k !== this.leaderKey && ready(l)).map(([, l]) => l);
    const states = leaves.map(([, l]) => l.getConnectivityState());
    const othersConnecting = states.some((s) => s === State.CONNECTING || s === State.IDLE);
    const snap: Snapshot = {
      leader,
      leaderReady: !!leader && ready(leader),
      followers,
      othersConnecting,
    };
    let state: grpc.connectivityState;
    if (states.includes(State.READY)) state = State.READY;
    else if (states.includes(State.CONNECTING)) state = State.CONNECTING;
    else if (states.includes(State.IDLE) || states.length === 0) state = State.IDLE;
    else state = State.TRANSIENT_FAILURE;
    const wasReady = this.state === State.READY;
    this.setState(
      state,
      new CommitlogPicker(snap, this),
      state === State.TRANSIENT_FAILURE ? this.lastError : null,
    );
    // Keep every member connected: a follower is the consumers' target and a possible
    // next leader.
    for (const [, l] of leaves) if (l.getConnectivityState() === State.IDLE) l.exitIdle();
    const leaderLost = leader?.getConnectivityState() === State.TRANSIENT_FAILURE;
    if (
      (wasReady && state !== State.READY) ||
      leaderLost ||
      (this.leaderKey !== undefined && !leader)
    ) {
      this.helper.requestReresolution();
    }
  }

  private setState(
    state: grpc.connectivityState,
    picker: grpc.experimental.Picker,
    error: string | null,
  ): void {
    this.state = state;
    this.helper.updateState(state, picker, error);
  }

  exitIdle(): void {
    for (const l of this.children.values()) l.exitIdle();
  }

  resetBackoff(): void {
    // The leaves reconnect on their own schedule; nothing of ours backs off.
  }

  destroy(): void {
    for (const l of this.children.values()) l.destroy();
    this.children.clear();
  }

  getTypeName(): string {
    return COMMITLOG_LB_POLICY;
  }
}

function addressOf(hostPort: string): grpc.experimental.SubchannelAddress {
  const hp = grpc.experimental.splitHostPort(hostPort);
  return { host: hp?.host ?? hostPort, port: hp?.port ?? 0 };
}
