// The one version constant: read from package.json, which ships with the package.
import { readFileSync } from 'node:fs';

/** This package's version (package.json `version`). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
