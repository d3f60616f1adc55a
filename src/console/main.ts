// The web console in the browser: polls GET /v1/status once a second for the cluster
// table and the charts, browses records with GET /v1/records/{offset}, tails with the
// SSE form of GET /v1/records, produces with POST /v1/records. Every value from the
// server reaches the page through textContent or attributes, never as markup.
import { LineChart } from './chart.js';
import {
  decodeValue,
  formatRate,
  formatSeconds,
  fromBase64,
  pageOffsets,
  parseOffsetInput,
  previousPage,
  toBase64,
} from './format.js';
import type { ApiError, StatusDocument, StatusServer } from './status-types.js';

const POLL_MS = 1000;
const PAGE_SIZE = 20;
const TAIL_KEEP = 200;

function $<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node as T;
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className !== undefined) node.className = className;
  return node;
}

/** A refused or failed call, with the server's words when it sent JSON. */
class ApiCallError extends Error {
  override readonly name = 'ApiCallError';
  constructor(
    readonly status: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

async function api(path: string, init?: RequestInit): Promise<unknown> {
  const res = await fetch(path, { ...init, headers: { accept: 'application/json' } });
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const why = (body as ApiError | undefined)?.error ?? res.statusText;
    throw new ApiCallError(res.status, `${res.status}: ${why}`);
  }
  return body;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---- cluster ---------------------------------------------------------------------

let latest: StatusDocument | undefined;
const rateChart = new LineChart($('rate-chart'), 'records per second', formatRate);
const latencyChart = new LineChart($('latency-chart'), 'produce latency', (v) => formatSeconds(v));

function serverRow(s: StatusServer): HTMLTableRowElement {
  const tr = h('tr');
  tr.dataset.member = s.id;
  if (s.isLeader) tr.classList.add('leader');
  if (s.lagging) tr.classList.add('lagging');
  if (s.state === 'dead' || s.state === 'left') tr.classList.add('down');
  const cells: [string, boolean][] = [
    [s.id, false],
    [s.isLeader ? 'leader' : s.suffrage === 'learner' ? 'learner' : 'follower', false],
    [s.suffrage ?? '–', false],
    [s.state ?? '–', false],
    [s.rpcAddr, false],
    [s.matchIndex?.toString() ?? '–', true],
    [s.lag?.toString() ?? '–', true],
  ];
  for (const [text, num] of cells) tr.append(h('td', text, num ? 'num' : undefined));
  return tr;
}

function renderStatus(doc: StatusDocument): void {
  $('node').textContent = doc.node ? `node ${doc.node}` : '';
  const quorum = $('quorum');
  quorum.textContent = doc.quorum.ok
    ? `quorum ${doc.quorum.reachable}/${doc.quorum.voters}`
    : `NO QUORUM ${doc.quorum.reachable}/${doc.quorum.voters} (needs ${doc.quorum.needed})`;
  quorum.className = `badge ${doc.quorum.ok ? 'ok' : 'bad'}`;
  $('updated').textContent = `updated ${new Date(doc.time).toLocaleTimeString()}`;
  const banner = $('banner');
  const lagging = doc.servers.filter((s) => s.lagging).map((s) => s.id);
  const problems = [
    ...(doc.leader ? [] : ['no leader is known']),
    ...(doc.quorum.ok ? [] : [`a quorum needs ${doc.quorum.needed} reachable voters`]),
    ...(lagging.length > 0 ? [`lagging or down: ${lagging.join(', ')}`] : []),
  ];
  banner.hidden = problems.length === 0;
  banner.textContent = problems.join(' · ');
  $('servers')
    .querySelector('tbody')
    ?.replaceChildren(...doc.servers.map(serverRow));
  const r = doc.raft;
  $('raft').textContent = r
    ? `this node: ${r.role}, term ${r.term}, commit ${r.commitIndex}, applied ${r.appliedIndex}, last ${r.lastIndex}` +
      (doc.offsets ? `, offsets ${doc.offsets.start}…${doc.offsets.end}` : '') +
      (doc.leader ? `; leader ${doc.leader.id} (${doc.leader.addr})` : '')
    : doc.leader
      ? `leader ${doc.leader.id} (${doc.leader.addr})`
      : '';
  // Match and lag are the leader's view; elsewhere the table says where to look.
  const unknownLag = doc.servers.length > 1 && doc.servers.every((s) => s.lag === undefined);
  $('lag-note').textContent = unknownLag
    ? 'Match and lag are known to the leader only: open this console on the leader to see them.'
    : '';
  const samples = doc.throughput?.samples ?? [];
  const now = Date.parse(doc.time);
  rateChart.draw(
    [
      {
        label: 'produced/s',
        className: 'a',
        points: samples.map((s) => ({ t: s.t, v: s.producedPerSec })),
      },
      {
        label: 'consumed/s',
        className: 'b',
        points: samples.map((s) => ({ t: s.t, v: s.consumedPerSec })),
      },
    ],
    now,
  );
  latencyChart.draw(
    [
      { label: 'produce p50', className: 'a', points: samples.map((s) => ({ t: s.t, v: s.p50 })) },
      { label: 'produce p99', className: 'b', points: samples.map((s) => ({ t: s.t, v: s.p99 })) },
    ],
    now,
  );
}

async function poll(): Promise<void> {
  try {
    latest = (await api('/v1/status')) as StatusDocument;
    renderStatus(latest);
  } catch (err) {
    const banner = $('banner');
    banner.hidden = false;
    banner.textContent = `status unavailable: ${describe(err)}`;
    $('quorum').textContent = '';
    $('quorum').className = 'badge';
  } finally {
    setTimeout(() => void poll(), POLL_MS);
  }
}

// ---- records -----------------------------------------------------------------------

interface WireRecord {
  offset: number | string;
  value: string;
}

function recordItem(offset: string, b64: string): HTMLLIElement {
  const li = h('li');
  li.dataset.offset = offset;
  const value = decodeValue(fromBase64(b64));
  const meta = h('div', `offset ${offset}`, 'meta');
  meta.append(h('span', value.kind, 'kind'));
  li.append(meta, h('pre', value.text));
  return li;
}

let browseFrom = 0n;

function bounds(): { start: bigint; end: bigint } | undefined {
  const o = latest?.offsets;
  return o ? { start: BigInt(o.start), end: BigInt(o.end) } : undefined;
}

async function showPage(from: bigint): Promise<void> {
  const status = $('browse-status');
  const list = $('browse-list');
  const b = bounds();
  // Without offsets in the status (a single node), read until the log's end refuses.
  const offsets = b
    ? pageOffsets(from, PAGE_SIZE, b.start, b.end)
    : pageOffsets(from, PAGE_SIZE, 0n, from + BigInt(PAGE_SIZE));
  browseFrom = offsets[0] ?? from;
  $<HTMLInputElement>('browse-from').value = browseFrom.toString();
  status.textContent = 'loading…';
  const results = await Promise.allSettled(
    offsets.map((o) => api(`/v1/records/${o}`) as Promise<{ record: WireRecord }>),
  );
  const items: HTMLLIElement[] = [];
  let refusal: string | undefined;
  for (const r of results) {
    if (r.status === 'fulfilled') {
      items.push(recordItem(String(r.value.record.offset), r.value.record.value));
    } else if (!(r.reason instanceof ApiCallError && r.reason.status === 404)) {
      refusal ??= describe(r.reason);
    }
  }
  list.replaceChildren(...items);
  status.className = refusal ? 'error' : 'muted';
  status.textContent =
    refusal ??
    (items.length === 0
      ? `no records from offset ${from}` + (b ? ` (the log holds ${b.start}…${b.end})` : '')
      : `${items.length} record(s) from offset ${browseFrom}`);
}

function wireBrowser(): void {
  $('browse-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const from = parseOffsetInput($<HTMLInputElement>('browse-from').value);
    if (from === undefined) {
      $('browse-status').textContent = 'an offset is an unsigned integer';
      return;
    }
    void showPage(from);
  });
  $('browse-prev').addEventListener('click', () => {
    void showPage(previousPage(browseFrom, PAGE_SIZE, bounds()?.start ?? 0n));
  });
  $('browse-next').addEventListener('click', () => {
    void showPage(browseFrom + BigInt(PAGE_SIZE));
  });
  $('browse-latest').addEventListener('click', () => {
    const b = bounds();
    const from = b ? previousPage(b.end, PAGE_SIZE, b.start) : 0n;
    void showPage(from);
  });
}

// ---- live tail ---------------------------------------------------------------------

let tail: EventSource | undefined;

function stopTail(note: string): void {
  tail?.close();
  tail = undefined;
  $('tail-toggle').textContent = 'Start';
  $('tail-status').textContent = note;
}

function startTail(): void {
  const from = bounds()?.end ?? 0n;
  const list = $('tail-list');
  list.replaceChildren();
  const source = new EventSource(`/v1/records?from=${from}`);
  tail = source;
  $('tail-toggle').textContent = 'Stop';
  $('tail-status').textContent = `following from offset ${from}`;
  source.onmessage = (e: MessageEvent<string>) => {
    const r = JSON.parse(e.data) as WireRecord;
    list.prepend(recordItem(String(r.offset), r.value));
    while (list.childElementCount > TAIL_KEEP) list.lastElementChild?.remove();
  };
  source.addEventListener('error', (e) => {
    // A server-sent `error` event carries the API's JSON error; a dropped connection does not.
    const data = (e as MessageEvent<string>).data;
    if (typeof data === 'string' && data !== '') {
      const body = JSON.parse(data) as ApiError;
      stopTail(`stopped: ${body.error ?? 'error'}`);
    } else if (source.readyState === EventSource.CLOSED) {
      stopTail('stopped: the node refused or closed the tail');
    } else {
      $('tail-status').textContent = 'reconnecting…';
    }
  });
  source.onopen = () => {
    $('tail-status').textContent = `following from offset ${from}`;
  };
}

// ---- produce -----------------------------------------------------------------------

function wireProduce(): void {
  $('produce-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $<HTMLTextAreaElement>('produce-value');
    const status = $('produce-status');
    const value = toBase64(new TextEncoder().encode(input.value));
    status.className = 'muted';
    status.textContent = 'producing…';
    void (async () => {
      try {
        const res = (await api('/v1/records', {
          method: 'POST',
          body: JSON.stringify({ value }),
        })) as { offset: number | string };
        status.textContent = `produced at offset ${res.offset}`;
        input.value = '';
      } catch (err) {
        status.className = 'error';
        status.textContent = `refused: ${describe(err)}`;
      }
    })();
  });
}

$('tail-toggle').addEventListener('click', () => {
  if (tail) stopTail('stopped');
  else startTail();
});
wireBrowser();
wireProduce();
void poll();
