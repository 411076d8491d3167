/**
 * scripts/setup.sh's decisions, run for real against a scratch project (TXGATE_ROOT) with fake
 * installers on PATH: `id`, `dpkg-query`, `apt-get`, `apt-cache`, `java`, `mvn`, `kcat`, `curl`,
 * `node` and `npm` are small shell scripts that log their calls, and PATH holds nothing else but
 * links to the basic system tools the script needs. Nothing on the machine is installed or changed.
 * The project's scripts/kafka-local.sh and scripts/build.cjs are fakes that log their calls too.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const SETUP = path.join(repo, 'scripts', 'setup.sh');
const NODE_ENV = path.join(repo, 'scripts', 'node-env.sh');
const PINNED = '24.22.3';
const ARCH = process.arch === 'arm64' ? 'arm64' : 'x64';
const NATIVE_DEPS = ['libssl-dev', 'zlib1g-dev', 'libzstd-dev', 'liblz4-dev', 'libsasl2-dev', 'build-essential', 'python3'];
const ALL_PACKAGES = ['openjdk-17-jdk-headless', 'maven', 'curl', 'golang-go', 'chromium', 'kcat', ...NATIVE_DEPS];
// Real tools the scripts may run; everything the tests control is a fake instead.
const SYSTEM_TOOLS = ['bash', 'sh', 'cat', 'cut', 'grep', 'sed', 'awk', 'sha256sum', 'sha512sum', 'tar', 'gzip', 'mkdir', 'rm', 'mv',
  'cp', 'ln', 'dirname', 'basename', 'readlink', 'uname', 'head', 'tail', 'mktemp', 'flock', 'setsid', 'base64', 'mkfifo', 'find',
  'sort', 'tr', 'wc', 'ls', 'touch', 'chmod', 'env', 'sleep'];

const scratch = mkdtempSync(path.join(tmpdir(), 'txgate-setup-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function script(file: string, body: string): void {
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
}

const log = (name: string) => `echo "${name} $*" >>"$FAKE_STATE/calls.log"`;

// Installed by the fake apt-get when their package is installed (and present from the start when a test says so).
const TOOL_FAKES: Record<string, { pkg: string; body: string }> = {
  java: { pkg: 'openjdk-17-jdk-headless', body: `${log('java')}\necho 'openjdk version "17.0.12" 2024-07-16' >&2` },
  mvn: { pkg: 'maven', body: log('mvn') },
  kcat: { pkg: 'kcat', body: log('kcat') },
  curl: { pkg: 'curl', body: log('curl') },
  go: { pkg: 'golang-go', body: log('go') },
  chromium: { pkg: 'chromium', body: log('chromium') },
};

let sysbin = '';
let nodeTgz = '';
let nodeTgzSha512 = '';

before(() => {
  sysbin = path.join(scratch, 'sysbin');
  mkdirSync(sysbin);
  for (const t of SYSTEM_TOOLS) {
    const p = which(t);
    if (p) symlinkSync(p, path.join(sysbin, t));
  }
  // What `npm pack node-linux-<arch>@<pinned>` fetches: bin/node (answers --version as the pinned
  // version, runs the real node otherwise), the headers npm_config_nodedir must point at, LICENSE.
  const pkg = path.join(scratch, 'node-pkg', 'package');
  mkdirSync(path.join(pkg, 'bin'), { recursive: true });
  mkdirSync(path.join(pkg, 'include', 'node'), { recursive: true });
  script(path.join(pkg, 'bin', 'node'), `[ "$1" = --version ] && { echo v${PINNED}; exit 0; }\nexec "$REAL_NODE" "$@"`);
  writeFileSync(path.join(pkg, 'include', 'node', 'node.h'), '');
  writeFileSync(path.join(pkg, 'include', 'node', 'node_version.h'), '#define NODE_MAJOR_VERSION 24\n');
  writeFileSync(path.join(pkg, 'LICENSE'), 'MIT\n');
  nodeTgz = path.join(scratch, `node-linux-${ARCH}-${PINNED}.tgz`);
  const tar = spawnSync('tar', ['-czf', nodeTgz, '-C', path.join(scratch, 'node-pkg'), 'package'], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  nodeTgzSha512 = createHash('sha512').update(readFileSync(nodeTgz)).digest('hex');
});

interface SandboxOptions {
  uid?: number;
  /** Debian packages installed at the start; their commands (java, mvn, kcat, curl) exist. */
  installed?: string[];
  /** `node --version` of the system's node; undefined: no node on PATH. */
  nodeVersion?: string | undefined;
  /** sha512 in the project's scripts/node-pin.txt (default: the fake tarball's). */
  pinSha512?: string;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  calls: string[];
}

let sandboxes = 0;

function sandbox(opts: SandboxOptions = {}) {
  const dir = path.join(scratch, `s${++sandboxes}`);
  const project = path.join(dir, 'project');
  const fakebin = path.join(dir, 'fakebin');
  const templates = path.join(dir, 'templates');
  const state = path.join(dir, 'state');
  const home = path.join(dir, 'home');
  for (const d of [path.join(project, 'scripts'), fakebin, templates, state, home]) mkdirSync(d, { recursive: true });

  writeFileSync(path.join(project, 'package.json'), '{ "name": "scratch", "version": "1.0.0" }\n');
  writeFileSync(path.join(project, 'package-lock.json'), '{ "name": "scratch", "lockfileVersion": 3, "packages": {} }\n');
  writeFileSync(
    path.join(project, 'scripts', 'node-pin.txt'),
    `# test pin\n${PINNED} x64 ${opts.pinSha512 ?? nodeTgzSha512}\n${PINNED} arm64 ${opts.pinSha512 ?? nodeTgzSha512}\n`,
  );
  // like the real one: resolves into $KAFKA_LOCAL_CACHE once, marking the jars complete
  script(
    path.join(project, 'scripts', 'kafka-local.sh'),
    `${log('kafka-local.sh')}
[ -z "$FAKE_KAFKA_FETCH_FAIL" ] || { echo "kafka-local: ERROR: mvn could not resolve Kafka" >&2; exit 1; }
lib="$KAFKA_LOCAL_CACHE/kafka_2.13-4.3.1/lib"
mkdir -p "$lib" && touch "$lib/.complete" && echo "$lib"`,
  );
  // like the real one, run by node: compiles src/ to dist/ when it is stale (tested in package-build.test.ts)
  writeFileSync(
    path.join(project, 'scripts', 'build.cjs'),
    `require('node:fs').appendFileSync(process.env.FAKE_STATE + '/calls.log', 'build.cjs ' + process.argv.slice(2).join(' ') + '\\n');
if (process.env.FAKE_BUILD_FAIL) { console.error("src/index.ts(1,1): error TS1005: ';' expected. (fake)"); process.exit(2); }`,
  );

  const installed = opts.installed ?? [];
  writeFileSync(path.join(state, 'installed'), installed.map((p) => `${p}\n`).join(''));
  for (const [cmd, t] of Object.entries(TOOL_FAKES)) {
    script(path.join(templates, cmd), t.body);
    if (installed.includes(t.pkg)) script(path.join(fakebin, cmd), t.body);
  }

  script(path.join(fakebin, 'id'), `[ "$1" = -u ] && { echo "$FAKE_UID"; exit 0; }\necho "uid=$FAKE_UID"`);
  script(
    path.join(fakebin, 'dpkg-query'),
    `${log('dpkg-query')}
rc=0
for a in "$@"; do
  case "$a" in -*) continue ;; esac
  if grep -qx -- "$a" "$FAKE_STATE/installed"; then echo "$a install ok installed"; else echo "dpkg-query: no packages found matching $a" >&2; rc=1; fi
done
exit $rc`,
  );
  script(
    path.join(fakebin, 'apt-get'),
    `${log('apt-get')}
case " $* " in
  *" update "*) [ -z "$FAKE_APT_UPDATE_FAIL" ] || { echo "E: The repository is not signed (fake)" >&2; exit 100; }; exit 0 ;;
esac
[ -z "$FAKE_APT_INSTALL_FAIL" ] || { echo "E: Unable to fetch some archives (fake)" >&2; exit 100; }
for a in "$@"; do
  case "$a" in -*|install) continue ;; esac
  echo "$a" >>"$FAKE_STATE/installed"
  case "$a" in
    openjdk-*) cp "$FAKE_TEMPLATES/java" "$FAKE_BIN/java" ;;
    maven) cp "$FAKE_TEMPLATES/mvn" "$FAKE_BIN/mvn" ;;
    kcat|curl) cp "$FAKE_TEMPLATES/$a" "$FAKE_BIN/$a" ;;
    golang-go) cp "$FAKE_TEMPLATES/go" "$FAKE_BIN/go" ;;
    chromium) cp "$FAKE_TEMPLATES/chromium" "$FAKE_BIN/chromium" ;;
  esac
done`,
  );
  script(path.join(fakebin, 'apt-cache'), `${log('apt-cache')}\nexit 0`);
  if (opts.nodeVersion !== undefined) {
    script(path.join(fakebin, 'node'), `[ "$1" = --version ] && { echo ${opts.nodeVersion}; exit 0; }\nexec "$REAL_NODE" "$@"`);
  }
  script(
    path.join(fakebin, 'npm'),
    `echo "npm $* | node=$(command -v node) | nodedir=\${npm_config_nodedir-} | CKJS_LINKING=\${CKJS_LINKING-}" >>"$FAKE_STATE/calls.log"
case "$1" in
  ci|install)
    [ -z "$FAKE_NPM_CI_FAIL" ] || { echo "npm error gyp ERR! build error (fake)" >&2; exit 1; }
    m=node_modules/@confluentinc/kafka-javascript
    mkdir -p "$m"
    echo '{ "name": "@confluentinc/kafka-javascript", "version": "1.10.1", "main": "index.js" }' >"$m/package.json"
    js="\${FAKE_NATIVE_JS-}"
    [ -n "$js" ] || js='module.exports = {};'
    echo "$js" >"$m/index.js" ;;
  pack)
    dest=; prev=
    for a in "$@"; do [ "$prev" = --pack-destination ] && dest="$a"; prev="$a"; done
    spec="$2"
    cp "$FAKE_NODE_TGZ" "$dest/\${spec%@*}-\${spec##*@}.tgz"
    echo '[]' ;;
  *) echo "fake npm: unexpected $*" >&2; exit 2 ;;
esac`,
  );

  const baseEnv: Record<string, string> = {
    PATH: `${fakebin}:${sysbin}`,
    HOME: home,
    KAFKA_LOCAL_CACHE: path.join(dir, 'kafka-cache'),
    LANG: 'C',
    TXGATE_ROOT: project,
    FAKE_UID: String(opts.uid ?? 0),
    FAKE_STATE: state,
    FAKE_BIN: fakebin,
    FAKE_TEMPLATES: templates,
    FAKE_NODE_TGZ: nodeTgz,
    REAL_NODE: process.execPath,
  };
  let seen = 0;

  return {
    project,
    fakebin,
    /** Runs setup.sh; `calls` are the fake commands it ran during this run. */
    run(env: Record<string, string> = {}): Run {
      const r = spawnSync(path.join(sysbin, 'bash'), [SETUP], { cwd: project, env: { ...baseEnv, ...env }, encoding: 'utf8', timeout: 60_000 });
      const logFile = path.join(state, 'calls.log');
      const all = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter(Boolean) : [];
      const calls = all.slice(seen);
      seen = all.length;
      return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls };
    },
    /** `bash scripts/node-env.sh` with this sandbox's PATH: the node that `npm start` and test.sh use. */
    nodeEnvNode(env: Record<string, string> = {}): string {
      const r = spawnSync(path.join(sysbin, 'bash'), [NODE_ENV], { cwd: project, env: { ...baseEnv, ...env }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim();
    },
  };
}

const installers = (calls: string[]) => calls.filter((c) => /^(apt-get|npm (ci|install|pack)) /.test(c));
const only = (calls: string[], re: RegExp) => calls.filter((c) => re.test(c));

describe('setup.sh: system packages', () => {
  it('as root, installs exactly the missing packages with one apt-get update and one apt-get install', () => {
    const s = sandbox({ installed: ['libssl-dev', 'zlib1g-dev', 'python3'], nodeVersion: 'v22.12.0' });
    const r = s.run();
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(only(r.calls, /^apt-get /), [
      'apt-get update -qq',
      'apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven curl golang-go chromium libzstd-dev liblz4-dev libsasl2-dev build-essential kcat',
    ]);
    // then node_modules, built against the system libraries, and the Kafka jars
    const npm = only(r.calls, /^npm /);
    assert.equal(npm.length, 1);
    assert.match(npm[0]!, /^npm ci --no-audit --no-fund \| .* \| CKJS_LINKING=dynamic$/);
    assert.deepEqual(only(r.calls, /^kafka-local\.sh /), ['kafka-local.sh fetch']);
    assert.deepEqual(only(r.calls, /^build\.cjs /), ['build.cjs --if-stale'], 'then dist/, from src/');
    // long steps say what they do and about how long
    assert.match(r.stderr, /setup: apt-get install openjdk-17-jdk-headless .* \(about 1-3 minutes\)/);
    assert.match(r.stderr, /setup: npm ci on Node\.js v22\.12\.0: .*\(about 1-3 minutes on 2 cores\)/);
    assert.match(r.stderr, /setup: fetching the Kafka broker and tools jars from Maven Central \(about 45 MB, up to a minute, first time only\)/);
  });

  it('a second run with everything present calls no installer', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v24.1.0' });
    const first = s.run();
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(installers(first.calls).map((c) => c.split(' |')[0]), ['npm ci --no-audit --no-fund'], 'only node_modules was missing');
    const second = s.run();
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(installers(second.calls), []);
    assert.ok(!second.calls.some((c) => c.startsWith('apt-cache ')), 'no package lookups either');
    assert.equal(second.stderr, '', 'nothing to say');
    // and a forced reinstall does run npm ci again (so the check above can fail)
    const forced = s.run({ TXGATE_FORCE_INSTALL: '1' });
    assert.equal(forced.status, 0, forced.stderr);
    assert.equal(only(forced.calls, /^npm ci /).length, 1);
  });

  it('as a non-root user, prints the exact apt-get line and fails without installing anything', () => {
    const s = sandbox({ uid: 1000, installed: ['openjdk-17-jdk-headless', 'maven', 'curl', 'golang-go', 'chromium', 'libssl-dev', 'zlib1g-dev', 'build-essential', 'python3'], nodeVersion: 'v22.12.0' });
    const r = s.run();
    assert.notEqual(r.status, 0);
    assert.ok(
      r.stderr.split('\n').some((l) => l.trim() === 'sudo apt-get update && sudo apt-get install -y --no-install-recommends libzstd-dev liblz4-dev libsasl2-dev'),
      r.stderr,
    );
    assert.match(r.stderr, /FAILED in step "check system packages": missing system packages: libzstd-dev liblz4-dev libsasl2-dev/);
    assert.deepEqual(installers(r.calls), []);
  });

  it('a failing apt-get install names its step and how to fix it, and stops there', () => {
    const s = sandbox({ installed: ['openjdk-17-jdk-headless', 'maven', 'curl', 'golang-go', 'chromium', 'kcat'], nodeVersion: 'v22.12.0' });
    const r = s.run({ FAKE_APT_INSTALL_FAIL: '1' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /E: Unable to fetch some archives \(fake\)/, "apt-get's own error is shown");
    assert.match(r.stderr, /setup: FAILED in step "apt-get install": apt-get install libssl-dev zlib1g-dev .* failed \(the last lines of its output are above; all of it is in .*apt-get-install.log\)/);
    assert.match(r.stderr, /setup: to fix: run it by hand to see why: apt-get install -y --no-install-recommends libssl-dev/);
    assert.deepEqual(only(r.calls, /^npm /), []);
  });

  it('a failing apt-get update names its step', () => {
    const s = sandbox({ installed: NATIVE_DEPS, nodeVersion: 'v22.12.0' });
    const r = s.run({ FAKE_APT_UPDATE_FAIL: '1' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /setup: FAILED in step "apt-get update": apt-get update failed \(exit 100\)/);
    assert.match(r.stderr, /setup: to fix: check that the Debian mirrors/);
  });
});

describe('setup.sh: node_modules, the Kafka jars and dist/', () => {
  it('a failing npm ci names its step, fails, and leaves no install stamp', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v22.12.0' });
    const r = s.run({ FAKE_NPM_CI_FAIL: '1' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /gyp ERR! build error \(fake\)/);
    assert.match(r.stderr, /setup: FAILED in step "npm ci": npm ci failed \(exit 1\)/);
    assert.match(r.stderr, /setup: to fix: .*TXGATE_FORCE_INSTALL=1 bash scripts\/setup\.sh/);
    assert.equal(existsSync(path.join(s.project, 'node_modules', '.txgate-install-stamp')), false);
    assert.deepEqual(only(r.calls, /^kafka-local\.sh /), [], 'later steps did not run');
  });

  it('a native module that does not load names the step, with the loader error', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v22.12.0' });
    const r = s.run({ FAKE_NATIVE_JS: "throw new Error('wrong ELF class: ELFCLASS32 (fake)')" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /wrong ELF class: ELFCLASS32 \(fake\)/);
    assert.match(r.stderr, /setup: FAILED in step "load @confluentinc\/kafka-javascript": @confluentinc\/kafka-javascript does not load/);
    // not stamped: the next run tries again
    const again = s.run();
    assert.equal(only(again.calls, /^npm ci /).length, 1);
  });

  it('a failing Kafka jar fetch names its step', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v22.12.0' });
    const r = s.run({ FAKE_KAFKA_FETCH_FAIL: '1' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /kafka-local: ERROR: mvn could not resolve Kafka/);
    assert.match(r.stderr, /setup: FAILED in step "fetch the Kafka jars \(scripts\/kafka-local\.sh fetch\)"/);
    assert.match(r.stderr, /setup: to fix: check that Maven Central is reachable/);
  });

  it('dist/ is brought up to date on every run, and a failing compile names its step', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v22.12.0' });
    const first = s.run();
    assert.equal(first.status, 0, first.stderr);
    const second = s.run();
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(only(second.calls, /^build\.cjs /), ['build.cjs --if-stale'], 'build.cjs itself decides whether src/ changed');
    const r = s.run({ FAKE_BUILD_FAIL: '1' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /error TS1005: ';' expected\. \(fake\)/, "tsc's own error is shown");
    assert.match(r.stderr, /setup: FAILED in step "compile src\/ to dist\/ \(scripts\/build\.cjs\)": scripts\/build\.cjs --if-stale failed \(exit 2\)/);
    assert.match(r.stderr, /setup: to fix: read tsc's errors above, fix them, then run setup again/);
  });
});

describe('setup.sh: Node.js', () => {
  it('Node.js 22+ on PATH: no download, npm and the build use it', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v22.12.0' });
    const r = s.run();
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(only(r.calls, /^npm pack /), []);
    assert.equal(existsSync(path.join(s.project, '.cache', 'node')), false);
    assert.doesNotMatch(r.stderr, /end-of-life/);
    assert.match(only(r.calls, /^npm ci /)[0]!, new RegExp(` \\| node=${s.fakebin}/node \\| `));
    assert.equal(s.nodeEnvNode(), path.join(s.fakebin, 'node'));
  });

  it('Node.js older than 22: fetches the pinned Node.js 24 once and runs npm, the build and node-env.sh on it', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v20.19.0' });
    const r = s.run();
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /setup: Node\.js v20\.19\.0 is end-of-life \(txgate supports 22, 24 and 26\): using Node\.js 24\.22\.3 from the npm registry in \.cache\/node; install Node\.js 22\+ to use your own/,
    );
    const pack = only(r.calls, /^npm pack /);
    assert.equal(pack.length, 1);
    assert.match(pack[0]!, new RegExp(`^npm pack node-linux-${ARCH}@${PINNED.replaceAll('.', '\\.')} --pack-destination \\S+ --json \\|`));
    const cached = path.join(s.project, '.cache', 'node');
    const ci = only(r.calls, /^npm ci /);
    assert.equal(ci.length, 1);
    assert.ok(ci[0]!.includes(` | node=${cached}/bin/node | nodedir=${cached} | `), ci[0]);
    assert.equal(s.nodeEnvNode(), path.join(cached, 'bin', 'node'), 'npm start and test.sh run on it too');
    assert.equal(s.nodeEnvNode({ TXGATE_NODE: 'system' }), path.join(s.fakebin, 'node'));

    const again = s.run();
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(installers(again.calls), [], 'cached: no second download, no reinstall');
  });

  it('TXGATE_NODE=system with Node.js older than 22: fails with a clear message instead of downloading', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v20.19.0' });
    const r = s.run({ TXGATE_NODE: 'system' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /setup: FAILED in step "Node\.js": Node\.js 22\+ is required; the node on PATH is v20\.19\.0, and TXGATE_NODE=system forbids fetching one/);
    assert.match(r.stderr, /setup: to fix: install Node\.js 22, 24 or 26/);
    assert.deepEqual(installers(r.calls), []);
  });

  it('a download whose checksum is not the pinned one is refused, and nothing is installed from it', () => {
    const s = sandbox({ installed: ALL_PACKAGES, nodeVersion: 'v20.19.0', pinSha512: '0'.repeat(128) });
    const r = s.run();
    assert.equal(r.status, 1);
    assert.match(r.stderr, /setup: FAILED in step "download Node\.js 24\.22\.3": node-linux-\w+@24\.22\.3 does not have the pinned checksum/);
    assert.equal(existsSync(path.join(s.project, '.cache', 'node')), false);
    assert.deepEqual(only(r.calls, /^npm ci /), []);
  });
});
