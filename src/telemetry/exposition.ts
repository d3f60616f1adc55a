/** One sample of a Prometheus text exposition: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;

function unescape(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/**
 * Parses the Prometheus text format (version 0.0.4) into samples, for tools and tests
 * that read `GET /metrics`. Comment and blank lines are skipped; a malformed line throws.
 */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_RE.exec(line);
    if (!match) throw new SyntaxError(`not a Prometheus sample line: ${line}`);
    const [, name = '', labelText = '', value = ''] = match;
    const labels: Record<string, string> = {};
    LABEL_RE.lastIndex = 0;
    let consumed = 0;
    for (let m = LABEL_RE.exec(labelText); m !== null; m = LABEL_RE.exec(labelText)) {
      labels[m[1] ?? ''] = unescape(m[2] ?? '');
      consumed = LABEL_RE.lastIndex;
    }
    if (consumed !== labelText.length) throw new SyntaxError(`bad labels in: ${line}`);
    samples.push({ name, labels, value: parseValue(value) });
  }
  return samples;
}

/**
 * The value of the one sample called `name` whose labels include `labels`; 0 when there
 * is none (a counter that never moved). Throws when several match.
 */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) {
    throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  }
  return found[0]?.value ?? 0;
}
