// In-process fake clusters for the client's tests: several grpc-js servers serving
// log.v1.Log from the generated service definition over one shared in-memory log.
// The test decides who leads, who is listed, who answers UNAVAILABLE, and who dies;
// the fakes count what every node received so tests can prove nothing was sent twice.
import { EventEmitter } from 'node:events';

import { BinaryWriter } from '@bufbuild/protobuf/wire';
import * as grpc from '@grpc/grpc-js';

import { LogService, type LogRecord, type LogServer, type ServerInfo } from '../src/api/index.js';

/** grpc-status-details-bin of a google.rpc.Status with one ErrorInfo detail. */
export function statusWithErrorInfo(
  code: number,
  message: string,
  info: { reason: string; metadata: Record<string, string> },
): Buffer {
  const ei = new BinaryWriter().uint32(10).string(info.reason).uint32(18).string('commitlog');
  for (const [k, v] of Object.entries(info.metadata)) {
    const entry = new BinaryWriter().uint32(10).string(k).uint32(18).string(v).finish();
    ei.uint32(26).bytes(entry);
  }
  const any = new BinaryWriter()
    .uint32(10)
    .string('type.googleapis.com/google.rpc.ErrorInfo')
    .uint32(18)
    .bytes(ei.finish())
    .finish();
  return Buffer.from(
    new BinaryWriter()
      .uint32(8)
      .int32(code)
      .uint32(18)
      .string(message)
      .uint32(26)
      .bytes(any)
      .finish(),
  );
}

type Method = 'produce' | 'produceBatch' | 'consume' | 'consumeBatchStream' | 'getServers';

/** Waits until `cond()` holds, polling on the event loop; fails after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export class FakeNode {
  server: grpc.Server | undefined;
  port = 0;
  readonly calls: Record<Method, number> = {
    produce: 0,
    produceBatch: 0,
    consume: 0,
    consumeBatchStream: 0,
    getServers: 0,
  };
  /** The next this-many calls (other than GetServers) answer UNAVAILABLE and do nothing. */
  unavailable = 0;
  /** NOT_LEADER answers name the leader (else they carry no hint). */
  hintLeader = true;
  /** Open ConsumeBatchStream calls. */
  streams = 0;

  constructor(
    readonly id: string,
    private readonly cluster: FakeCluster,
    private readonly credentials = grpc.ServerCredentials.createInsecure(),
  ) {}

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    const server = new grpc.Server();
    server.addService(LogService, this.handlers());
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.port}`, this.credentials, (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    this.server = server;
  }

  /** Stops answering at once: open calls and connections are cut. */
  kill(): void {
    this.server?.forceShutdown();
    this.server = undefined;
  }

  private refuse(): grpc.ServiceError | undefined {
    if (this.unavailable <= 0) return undefined;
    this.unavailable--;
    return Object.assign(new Error('fake: unavailable'), {
      code: grpc.status.UNAVAILABLE,
      details: 'fake: unavailable',
      metadata: new grpc.Metadata(),
    });
  }

  private notLeader(): grpc.ServiceError | undefined {
    const leader = this.cluster.leader;
    if (leader === this) return undefined;
    const metadata = new grpc.Metadata();
    const hint: Record<string, string> = {};
    if (leader && this.hintLeader) {
      hint['leader_id'] = leader.id;
      hint['leader_addr'] = leader.addr;
    }
    metadata.set(
      'grpc-status-details-bin',
      statusWithErrorInfo(grpc.status.FAILED_PRECONDITION, 'not the leader', {
        reason: 'NOT_LEADER',
        metadata: hint,
      }),
    );
    return Object.assign(new Error('not the leader'), {
      code: grpc.status.FAILED_PRECONDITION,
      details: 'not the leader',
      metadata,
    });
  }

  private handlers(): LogServer {
    const c = this.cluster;
    const produce = (values: Buffer[]): grpc.ServiceError | bigint => {
      for (const v of values) c.received.set(v.toString(), (c.received.get(v.toString()) ?? 0) + 1);
      const err = this.refuse() ?? this.notLeader();
      return err ?? c.append(values);
    };
    return {
      removeServer: (call, cb) => {
        const err = this.refuse() ?? this.notLeader();
        if (err) return cb(err);
        c.removed.push(call.request.id);
        cb(null, { raftId: call.request.id });
      },
      produce: (call, cb) => {
        this.calls.produce++;
        const r = produce([call.request.record?.value ?? Buffer.alloc(0)]);
        if (typeof r === 'bigint') cb(null, { offset: r });
        else cb(r);
      },
      produceBatch: (call, cb) => {
        this.calls.produceBatch++;
        const r = produce(call.request.records.map((x) => x.value));
        if (typeof r === 'bigint') cb(null, { firstOffset: r, count: call.request.records.length });
        else cb(r);
      },
      consume: (call, cb) => {
        this.calls.consume++;
        const err = this.refuse();
        if (err) return cb(err);
        const value = c.log[Number(call.request.offset)];
        if (value === undefined) {
          return cb({
            code: grpc.status.OUT_OF_RANGE,
            details: `offset ${call.request.offset} out of range`,
          });
        }
        cb(null, { record: c.record(call.request.offset) });
      },
      consumeBatchStream: (call) => {
        this.calls.consumeBatchStream++;
        const err = this.refuse();
        if (err) {
          call.emit('error', err);
          return;
        }
        this.streams++;
        c.streamOffsets.push(call.request.offset);
        let next = Number(call.request.offset);
        const max = call.request.maxRecords || 100;
        let closed = false;
        const send = () => {
          while (!closed && next < c.log.length) {
            const records: LogRecord[] = [];
            while (records.length < max && next < c.log.length)
              records.push(c.record(BigInt(next++)));
            call.write({ records });
          }
        };
        const stop = () => {
          if (closed) return;
          closed = true;
          this.streams--;
          c.grew.off('grew', send);
        };
        call.on('cancelled', stop);
        call.on('close', stop);
        call.on('error', stop);
        c.grew.on('grew', send);
        send();
      },
      getServers: (_call, cb) => {
        this.calls.getServers++;
        cb(null, { servers: c.listing() });
      },
      consumeStream: (call) => {
        call.destroy(
          Object.assign(new Error('fake: not served'), { code: grpc.status.UNIMPLEMENTED }),
        );
      },
      produceStream: (call) => {
        call.destroy(
          Object.assign(new Error('fake: not served'), { code: grpc.status.UNIMPLEMENTED }),
        );
      },
    };
  }
}

export class FakeCluster {
  readonly log: Buffer[] = [];
  /** Value → how many times a node appended it (must stay ≤ 1). */
  readonly appended = new Map<string, number>();
  /** Value → how many produce requests carrying it reached any node. */
  readonly received = new Map<string, number>();
  /** Ids the leader was asked to remove, in order. */
  readonly removed: string[] = [];
  readonly grew = new EventEmitter();
  /** The offset each ConsumeBatchStream served asked for, in order. */
  readonly streamOffsets: bigint[] = [];
  readonly nodes: FakeNode[] = [];
  leader: FakeNode | undefined;
  /** Who GetServers lists (default: every live node). */
  listed: FakeNode[] | undefined;

  static async start(
    n: number,
    credentials?: (i: number) => grpc.ServerCredentials,
  ): Promise<FakeCluster> {
    const c = new FakeCluster();
    for (let i = 0; i < n; i++) await c.add(credentials?.(i));
    c.leader = c.nodes[0];
    return c;
  }

  async add(credentials?: grpc.ServerCredentials): Promise<FakeNode> {
    const node = new FakeNode(`node-${this.nodes.length}`, this, credentials);
    await node.start();
    this.nodes.push(node);
    return node;
  }

  node(i: number): FakeNode {
    const n = this.nodes[i];
    if (!n) throw new Error(`no node ${i}`);
    return n;
  }

  record(offset: bigint): LogRecord {
    return { value: this.log[Number(offset)] as Buffer, offset, term: 1n, type: 0 };
  }

  append(values: Buffer[]): bigint {
    const first = BigInt(this.log.length);
    for (const v of values) {
      this.log.push(v);
      this.appended.set(v.toString(), (this.appended.get(v.toString()) ?? 0) + 1);
    }
    this.grew.emit('grew');
    return first;
  }

  listing(): ServerInfo[] {
    return (this.listed ?? this.nodes.filter((n) => n.alive)).map((n) => ({
      id: n.id,
      rpcAddr: n.addr,
      isLeader: n === this.leader,
      raftId: n.id,
      suffrage: 'voter',
      matchIndex: 0n,
      lag: 0n,
    }));
  }

  /** Values appended more than once (must be empty). */
  duplicates(): string[] {
    return [...this.appended].filter(([, n]) => n > 1).map(([v]) => v);
  }

  total(method: Method): number {
    return this.nodes.reduce((sum, n) => sum + n.calls[method], 0);
  }

  stop(): void {
    for (const n of this.nodes) n.kill();
  }
}
