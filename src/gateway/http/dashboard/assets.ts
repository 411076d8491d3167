/**
 * The dashboard's static files, read once at start-up and served from memory: the page's own
 * HTML, CSS and JavaScript (plain files beside this module: no build step, and the build copies
 * them beside the compiled JavaScript), and uPlot's from its npm package, so the page makes no
 * request beyond this gateway and works with no internet.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: Buffer;
  contentType: string;
  /** A strong validator: clients revalidate (no-cache) and get 304 while the file is unchanged. */
  etag: string;
}

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

function asset(file: string): Asset {
  const body = readFileSync(file);
  return {
    body,
    contentType: TYPES[path.extname(file)] ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
  };
}

export interface DashboardAssets {
  page: Asset;
  /** By the name the page asks for under dashboard/assets/. */
  files: Map<string, Asset>;
}

let loaded: DashboardAssets | undefined;

/**
 * Throws when a file is missing (a broken install): the caller decides what the gateway does then.
 * Read once per process: the files do not change while it runs, and tests build many gateways.
 */
export function loadDashboardAssets(): DashboardAssets {
  if (loaded) return loaded;
  const uplotDist = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
  loaded = {
    page: asset(path.join(PAGE_DIR, 'index.html')),
    files: new Map([
      ['dashboard.js', asset(path.join(PAGE_DIR, 'dashboard.js'))],
      ['dashboard.css', asset(path.join(PAGE_DIR, 'dashboard.css'))],
      ['uPlot.min.js', asset(path.join(uplotDist, 'uPlot.iife.min.js'))],
      ['uPlot.min.css', asset(path.join(uplotDist, 'uPlot.min.css'))],
    ]),
  };
  return loaded;
}
