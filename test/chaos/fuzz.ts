export interface FuzzOptions {
  inputs: number;
  seed: number;
  maxRssBytes: number;
  log?: (l: string) => void;
}
export async function runFuzz(_o: FuzzOptions): Promise<{ ok: boolean; summary: string }> {
  throw new Error('fuzz: not yet written');
}
