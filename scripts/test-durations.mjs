// A node:test reporter that prints, once the run ends, the test files that took
// longest (each file's own process, start-up included), to keep `npm test` short.
// The runner adds it beside the spec reporter; TEST_SLOWEST=N changes how many lines.
import { relative } from 'node:path';

export default async function* durations(source) {
  /** @type {{ file: string, ms: number }[]} */
  const files = [];
  for await (const event of source) {
    // A file's own completion names the file as the test (its tests name themselves).
    const { name, file, details } = event.data ?? {};
    if (event.type === 'test:complete' && file && name === file && details) {
      files.push({ file: relative(process.cwd(), file), ms: details.duration_ms });
    }
  }
  const count = Number(process.env.TEST_SLOWEST ?? 15);
  if (!(count > 0) || files.length === 0) return;
  const rows = files.sort((a, b) => b.ms - a.ms).slice(0, count);
  const width = Math.max(...rows.map((r) => r.file.length));
  const total = files.reduce((sum, f) => sum + f.ms, 0);
  yield `\nslowest test files (of ${files.length}, ${(total / 1000).toFixed(0)} s in all):\n`;
  for (const { file, ms } of rows) yield `  ${file.padEnd(width)}  ${(ms / 1000).toFixed(1)} s\n`;
}
