// Who this node is, per data directory: made once and kept in `<data-dir>/node`.
// - The cluster id is made at bootstrap and learned on the first join; a node refuses
//   to serve another cluster with the same data.
// - The Raft id is the node name plus a random suffix, made once per data directory: a
//   node whose disk was wiped comes back as a new member (it may have voted in terms it
//   no longer remembers), and the old id can be removed.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { AlreadyBootstrappedError, ClusterMismatchError } from './errors.js';
import { BodyReader, BodyWriter, readStateFile, writeStateFile } from './state-file.js';

export interface NodeIdentity {
  readonly raftId: string;
  readonly nodeName: string;
  /** Empty until the node bootstraps or first joins a cluster. */
  readonly clusterId: string;
  /** How this data directory entered its cluster. */
  readonly origin: 'bootstrap' | 'join' | 'none';
}

const FILE = 'node';

/** The Raft id of a node name: the name, a dot and 12 hex digits. */
export function newRaftId(nodeName: string): string {
  return `${nodeName}.${randomBytes(6).toString('hex')}`;
}

/** The node name a Raft id was made from. */
export function nodeNameOf(raftId: string): string {
  const dot = raftId.lastIndexOf('.');
  return dot > 0 ? raftId.slice(0, dot) : raftId;
}

export async function loadIdentity(dataDir: string, nodeName: string): Promise<NodeIdentity> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, FILE);
  const body = await readStateFile(path, 'CLID', 1);
  if (body) {
    const r = new BodyReader(body, path);
    const id: NodeIdentity = {
      raftId: r.str(),
      nodeName: r.str(),
      clusterId: r.str(),
      origin: r.str() as NodeIdentity['origin'],
    };
    r.end();
    // A renamed node keeps its Raft id: the id, not the name, is what Raft knows.
    return id.nodeName === nodeName ? id : { ...id, nodeName };
  }
  const fresh: NodeIdentity = {
    raftId: newRaftId(nodeName),
    nodeName,
    clusterId: '',
    origin: 'none',
  };
  await saveIdentity(dataDir, fresh);
  return fresh;
}

export async function saveIdentity(dataDir: string, id: NodeIdentity): Promise<void> {
  const body = new BodyWriter()
    .str(id.raftId)
    .str(id.nodeName)
    .str(id.clusterId)
    .str(id.origin)
    .done();
  await writeStateFile(join(dataDir, FILE), 'CLID', 1, body, { sync: true });
}

/** The identity after `--bootstrap`: a new cluster id, unless this node already bootstrapped one. */
export async function bootstrapIdentity(
  dataDir: string,
  id: NodeIdentity,
  hasState: boolean,
): Promise<NodeIdentity> {
  if (id.clusterId !== '' && id.origin === 'bootstrap') return id; // a restart of the founder
  if (id.clusterId !== '' || hasState)
    throw new AlreadyBootstrappedError(dataDir, id.clusterId || 'unknown');
  const next: NodeIdentity = { ...id, clusterId: randomUUID(), origin: 'bootstrap' };
  await saveIdentity(dataDir, next);
  return next;
}

/** The identity after learning the cluster's id from the members reached on join. */
export async function joinIdentity(
  dataDir: string,
  id: NodeIdentity,
  clusterId: string,
): Promise<NodeIdentity> {
  if (id.clusterId === clusterId) return id;
  if (id.clusterId !== '') throw new ClusterMismatchError(id.clusterId, clusterId);
  const next: NodeIdentity = { ...id, clusterId, origin: 'join' };
  await saveIdentity(dataDir, next);
  return next;
}
