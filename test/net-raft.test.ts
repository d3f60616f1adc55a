// Three RaftNodes over StreamTransport, each behind its own PortMux with mutual TLS on
// 127.0.0.1: they elect a leader, replicate, and survive a follower's port going away.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PortMux, TlsPeerStreamLayer } from '../src/net/index.js';
import { RaftNode, type ConfState } from '../src/raft/index.js';
import { StreamTransport } from '../src/raft/index.js';
import {
  MemoryHardStateStorage,
  MemoryLogStorage,
  MemoryStateMachine,
} from '../src/raft/testing/index.js';
import { makePki, until, type Pki } from './net-fixtures.js';

type Id = 'n1' | 'n2' | 'n3';
const IDS: Id[] = ['n1', 'n2', 'n3'];

interface Member {
  id: Id;
  port: number;
  node: RaftNode;
  state: { log: MemoryLogStorage; hard: MemoryHardStateStorage; sm: MemoryStateMachine };
  transport: StreamTransport;
  stop(): Promise<void>;
}

async function startMember(
  pki: Pki,
  id: Id,
  book: Map<string, string>,
  conf: ConfState,
  port = 0,
  state?: { log: MemoryLogStorage; hard: MemoryHardStateStorage; sm: MemoryStateMachine },
): Promise<Member> {
  const layer = new TlsPeerStreamLayer({
    cert: pki.nodes[id].certPem,
    key: pki.nodes[id].keyPem,
    ca: pki.ca,
  });
  const mux = new PortMux({ mode: 'tls', routes: { raft: layer.sink } });
  const bound = await mux.listen('127.0.0.1', port);
  book.set(id, `127.0.0.1:${bound.port}`);
  const transport = new StreamTransport({
    id,
    clusterId: 'raft-test',
    layer,
    addressOf: (peer) => book.get(peer),
    backoff: { minMs: 10, maxMs: 200 },
  });
  const log = state?.log ?? new MemoryLogStorage();
  const hard = state?.hard ?? new MemoryHardStateStorage();
  const sm = state?.sm ?? new MemoryStateMachine();
  const node = await RaftNode.start({
    id,
    logStorage: log,
    hardStateStorage: hard,
    snapshots: sm,
    transport,
    apply: sm.apply,
    applied: sm.appliedIndex,
    bootstrap: state ? undefined : conf,
    tickMs: 10,
  });
  return {
    id,
    port: bound.port,
    node,
    state: { log, hard, sm },
    transport,
    stop: async () => {
      await node.close();
      await transport.close();
      await layer.close();
      await mux.close();
    },
  };
}

describe('Raft over StreamTransport and PortMux (mutual TLS)', () => {
  it('elects, replicates, and catches a restarted follower up', async () => {
    const pki = await makePki();
    const book = new Map<string, string>();
    const conf: ConfState = {
      voters: IDS,
      learners: [],
      addresses: Object.fromEntries(IDS.map((id) => [id, id])),
    };
    const members = new Map<Id, Member>();
    for (const id of IDS) members.set(id, await startMember(pki, id, book, conf));
    try {
      members.get('n1')!.node.campaign();
      let leader: RaftNode | undefined;
      await until(
        () => {
          leader = [...members.values()]
            .map((m) => m.node)
            .find((n) => n.status().role === 'leader');
          return leader !== undefined;
        },
        10_000,
        'a leader',
      );
      const enc = new TextEncoder();
      const first = await Promise.all(
        Array.from({ length: 50 }, (_, k) => leader!.propose(enc.encode(`r${k}`))),
      );
      const last = first[first.length - 1]!;
      await until(
        () => [...members.values()].every((m) => m.node.status().applied >= last),
        10_000,
        'applied everywhere',
      );
      // Stop a follower (its port closes), keep writing, bring it back on the same port.
      const follower = [...members.values()].find((m) => m.node !== leader)!;
      await follower.stop();
      const more = await Promise.all(
        Array.from({ length: 50 }, (_, k) => leader!.propose(enc.encode(`s${k}`))),
      );
      const end = more[more.length - 1]!;
      // It restarts from its own storage and state machine, as after a crash of the process.
      const restarted = await startMember(
        pki,
        follower.id,
        book,
        conf,
        follower.port,
        follower.state,
      );
      members.set(follower.id, restarted);
      await until(() => restarted.node.status().applied >= end, 10_000, 'the follower caught up');
      const data = restarted.state.sm.applied
        .map((d) => new TextDecoder().decode(d))
        .filter(Boolean);
      assert.ok(data.includes('r0') && data.includes('s49'), data.slice(-3).join(','));
      const leaderId = leader!.id;
      const s = members.get(leaderId as Id)!.transport.stats().peers[follower.id]!;
      assert.ok(s.reconnects >= 1, JSON.stringify(s));
      assert.ok(s.sentMessages > 0 && s.receivedMessages > 0, JSON.stringify(s));
    } finally {
      for (const m of members.values()) await m.stop().catch(() => {});
    }
  });
});
