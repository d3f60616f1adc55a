export { buildProgram, main } from './main.js';
export type { BenchReport } from './bench/command.js';
export { UsageError } from './errors.js';
