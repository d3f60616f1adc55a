// The web console's static files: GET /ui (the page) and GET /ui/assets/<name> (its
// script and style sheet, named by content hash, so browsers may keep them for a year).
// They hold no data: every record and status the page shows comes from the API routes,
// under the same authorization as any other client's calls.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';

import {
  CONSOLE_CSS,
  CONSOLE_HASH,
  CONSOLE_HTML,
  CONSOLE_ICON,
  CONSOLE_JS,
} from './console-bundle.js';

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  cacheControl: string;
  etag: string;
}

/** Scripts and styles from this node only; no inline code, no framing by other sites. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const IMMUTABLE = 'public, max-age=31536000, immutable';

function asset(type: string, text: string, cacheControl: string): Asset {
  const body = Buffer.from(text, 'utf8');
  return {
    type,
    body,
    gzip: gzipSync(body, { level: 9 }),
    cacheControl,
    etag: `"${CONSOLE_HASH}"`,
  };
}

let assets: Map<string, Asset> | undefined;

/** The assets by path under /ui/assets/, and the page under ''; compressed once. */
function table(): Map<string, Asset> {
  assets ??= new Map([
    // The page names the current hashes, so it is revalidated on every load.
    ['', asset('text/html; charset=utf-8', CONSOLE_HTML, 'no-cache')],
    [`console.${CONSOLE_HASH}.js`, asset('text/javascript; charset=utf-8', CONSOLE_JS, IMMUTABLE)],
    [`console.${CONSOLE_HASH}.css`, asset('text/css; charset=utf-8', CONSOLE_CSS, IMMUTABLE)],
    [`favicon.${CONSOLE_HASH}.svg`, asset('image/svg+xml', CONSOLE_ICON, IMMUTABLE)],
  ]);
  return assets;
}

/** Bytes of the console sent to a browser that accepts gzip (page, script, style). */
export function consoleGzipBytes(): number {
  return [...table().values()].reduce((sum, a) => sum + a.gzip.byteLength, 0);
}

function serve(req: IncomingMessage, res: ServerResponse, a: Asset): void {
  const headers: Record<string, string | number> = {
    ...SECURITY_HEADERS,
    'content-type': a.type,
    'cache-control': a.cacheControl,
    etag: a.etag,
    vary: 'accept-encoding',
  };
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, headers);
    return void res.end();
  }
  const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
  const body = gzip ? a.gzip : a.body;
  if (gzip) headers['content-encoding'] = 'gzip';
  headers['content-length'] = body.byteLength;
  res.writeHead(200, headers);
  res.end(body);
}

/** GET /ui: the console page. */
export function serveConsolePage(req: IncomingMessage, res: ServerResponse): void {
  serve(req, res, table().get('') as Asset);
}

/** GET /ui/assets/<name>; false when there is no such asset (the caller answers 404). */
export function serveConsoleAsset(
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
): boolean {
  const a = name === '' ? undefined : table().get(name);
  if (a === undefined) return false;
  serve(req, res, a);
  return true;
}
