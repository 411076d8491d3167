#!/usr/bin/env bash
# setup.sh: make this checkout runnable on a bare Debian/Ubuntu (minbase + Node.js + npm + git).
# Idempotent: when everything is in place it only checks (well under 2 s). `npm start` and
# `npm test` call it first, so nobody has to run it by hand.
#
#   1. Debian packages, with apt-get when running as root (otherwise it prints the apt-get line):
#      Java 17+ and Maven (the broker runs on the JVM; Maven resolves its jars), curl (the tests and
#      the printed example use it), kcat (only as root: the printed examples use it), and what the
#      Kafka client's native build needs (OpenSSL, zlib, zstd, lz4, SASL, a C++ toolchain, python3).
#   2. Node.js 22+ (txgate supports the maintained lines 22, 24 and 26). When the `node` on PATH is
#      older, the pinned official Node.js 24 binary (scripts/node-pin.txt) is fetched from the npm
#      registry into .cache/node; scripts/node-env.sh then puts it first on PATH for npm, the
#      native build, the tests and `npm start`.
#   3. node_modules (npm ci), with @confluentinc/kafka-javascript built from its bundled librdkafka
#      against the system libraries (CKJS_LINKING=dynamic): its default install downloads prebuilt
#      binaries and dependency sources from GitHub, which is not reachable here.
#   4. The Kafka jars, resolved once from Maven Central into a cache (scripts/kafka-local.sh fetch).
#   5. dist/, the compiled JavaScript that bin/txgate.cjs runs: recompiled from src/ when src/ changed
#      since it was built (scripts/build.cjs --if-stale; a few milliseconds when nothing changed).
#
# Every failure names the step that failed and how to fix it.
#
# Environment (all optional):
#   TXGATE_FORCE_INSTALL=1  reinstall node_modules even when the lock file is unchanged
#   TXGATE_NODE=system      never fetch Node.js: fail unless the `node` on PATH is 22+
#   TXGATE_ROOT             the project to set up (default: this checkout; the tests use a scratch one)
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${TXGATE_ROOT:-$(cd "$SCRIPT_DIR/.." && pwd)}"
TXGATE_ROOT="$ROOT" # read by node-env.sh when sourced
cd "$ROOT"

STAMP="node_modules/.txgate-install-stamp"
NODE_CACHE="$ROOT/.cache/node"
MIN_NODE_MAJOR=22
JAVA_PKG=openjdk-17-jdk-headless
NATIVE_DEPS=(libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev build-essential python3)
# Commands this script, test.sh, kafka-local.sh and the tests run, and the Debian package of each.
# All but curl, go (the Go client example the tests run) and chromium (the dashboard's browser
# test) are in a minbase Debian; a trimmed image may still lack some.
TOOLS=(curl:curl awk:mawk tar:tar gzip:gzip sha256sum:coreutils sha512sum:coreutils base64:coreutils
  mkfifo:coreutils find:findutils flock:util-linux setsid:util-linux go:golang-go chromium:chromium)

# ---------------------------------------------------------------- reporting
STEP="start"
FIX=""
REPORTED=0
TMP_DIRS=()
step() { STEP="$1"; FIX="${2:-}"; }
log() { printf 'setup: %s\n' "$*" >&2; }
report() { # headline [detail]
  ((REPORTED == 0)) || return 0
  REPORTED=1
  printf 'setup: FAILED in step "%s": %s\n' "$STEP" "$1" >&2
  if [[ -n $FIX ]]; then printf 'setup: to fix: %s\n' "$FIX" >&2; fi
  return 0
}
die() { # message [fix: replaces the step's]
  if (($# > 1)); then FIX="$2"; fi
  report "$1"
  exit 1
}
on_err() { # rc line command: a command failed under set -e
  [[ $BASHPID == "$$" ]] || exit "$1" # a subshell: its parent reports
  report "'$3' exited with status $1 (setup.sh line $2)"
  exit "$1"
}
on_exit() {
  local rc=$? d
  for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done
  ((rc == 0)) || report "exit status $rc"
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR
trap on_exit EXIT
trap 'report "interrupted"; exit 130' INT
trap 'report "terminated"; exit 143' TERM

elapsed() { printf '%dm%02ds' $((($1) / 60)) $((($1) % 60)); }

# ---------------------------------------------------------------- 1: system packages
step "check system packages"
uid="$(id -u)"
have() { command -v "$1" >/dev/null 2>&1; }

java_major() { # the major version of `java` on PATH, empty when there is none
  have java || return 0
  local out
  out="$(java -version 2>&1)" || return 0
  sed -E -n '1s/.* version "(1\.)?([0-9]+).*/\2/p' <<<"$out"
}
java_ok() { local v; v="$(java_major)"; [[ -n $v ]] && ((v >= 17)); }

dpkg_installed() { # packages... -> those dpkg reports as installed, one per line
  local out
  # dpkg-query exits 1 when any named package is unknown to it; the known ones are still printed
  out="$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null)" || true
  awk '$NF == "installed" { sub(/:.*/, "", $1); print $1 }' <<<"$out"
}

missing=()
add_missing() { [[ " ${missing[*]-} " == *" $1 "* ]] || missing+=("$1"); }
java_ok || add_missing "$JAVA_PKG"
have mvn || add_missing maven
for t in "${TOOLS[@]}"; do have "${t%%:*}" || add_missing "${t#*:}"; done
if have dpkg-query; then
  installed="$(dpkg_installed "${NATIVE_DEPS[@]}")"
  for p in "${NATIVE_DEPS[@]}"; do
    grep -qx -- "$p" <<<"$installed" || add_missing "$p"
  done
else
  log "not a Debian system: make sure the OpenSSL, zlib, zstd, lz4 and SASL headers, a C++ toolchain and python3 are installed"
fi

if ((${#missing[@]} > 0)) && { [[ $uid != 0 ]] || ! have apt-get; }; then
  if have apt-get; then
    die "missing system packages: ${missing[*]} (not running as root, so not installing them)" \
      "run this, then run setup again:
    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  die "missing system packages (Debian names): ${missing[*]}, and there is no apt-get" \
    "install the equivalents with your package manager (Java 17+, Maven, curl, the OpenSSL/zlib/zstd/lz4/SASL headers, a C++ toolchain, python3)"
fi
# kcat is what the examples `txgate start` prints use: nice to have, so only added when we can install
# it, and never worth an apt-get update of its own when apt does not know it
wants_kcat=0
if [[ $uid == 0 ]] && have apt-get && ! have kcat; then
  wants_kcat=1
  if ((${#missing[@]} == 0)) && ! apt-cache show kcat >/dev/null 2>&1; then
    wants_kcat=0
    log "kcat is not in apt's package lists: not installed (only the examples txgate prints use it)"
  fi
fi

if ((${#missing[@]} > 0 || wants_kcat)); then
  step "apt-get update" "check that the Debian mirrors in /etc/apt/sources.list are reachable, then run setup again"
  log "apt-get update (about 10-30 s)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed (exit $?)"
  if ((wants_kcat)); then
    if apt-cache show kcat >/dev/null 2>&1; then
      add_missing kcat
    else
      log "kcat is not in apt's package lists: not installed (only the examples txgate prints use it)"
    fi
  fi
fi
if ((${#missing[@]} > 0)); then
  step "apt-get install" "run it by hand to see why: apt-get install -y --no-install-recommends ${missing[*]}"
  log "apt-get install ${missing[*]} (about 1-3 minutes)"
  t0=$SECONDS
  # dpkg's hundreds of unpacking lines go to a log, shown only if the install fails
  apt_log="$ROOT/.cache/apt-get-install.log"
  mkdir -p "$ROOT/.cache"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    die "apt-get install ${missing[*]} failed (the last lines of its output are above; all of it is in $apt_log)"
  fi
  hash -r
  log "apt-get install done in $(elapsed $((SECONDS - t0)))"
  step "check system packages after apt-get install" "see the apt-get output above"
  java_ok || die "Java 17+ is required, but the 'java' on PATH is $(java_major || true) ($(command -v java || echo missing))" \
    "make a Java 17+ 'java' the first on PATH (update-alternatives --config java)"
  have mvn || die "Maven ('mvn') is still not on PATH" "install the Debian package maven"
  for t in "${TOOLS[@]}"; do have "${t%%:*}" || die "'${t%%:*}' is still not on PATH" "install the Debian package ${t#*:}"; done
fi

# one setup at a time per checkout: a second `npm test` waits instead of using a half-fetched Node.js
# or a half-built node_modules (apt-get has a lock of its own)
if have flock; then
  mkdir -p "$ROOT/.cache"
  exec {lock_fd}>"$ROOT/.cache/setup.lock"
  if ! flock -n "$lock_fd"; then
    log "another setup.sh is running in this checkout: waiting for it"
    flock "$lock_fd"
  fi
fi

# ---------------------------------------------------------------- 2: Node.js
step "Node.js" "install Node.js 22, 24 or 26 and put it first on PATH"
case "${TXGATE_NODE:-}" in
  "" | system) ;;
  *) die "TXGATE_NODE='$TXGATE_NODE' is not supported" "unset TXGATE_NODE, or set it to 'system'" ;;
esac
# decide on the system's node: take .cache/node/bin off PATH (a shell that sourced node-env.sh has it)
path_parts=()
IFS=: read -r -a path_parts <<<"$PATH"
PATH=""
for d in "${path_parts[@]}"; do [[ $d == "$NODE_CACHE/bin" ]] || PATH+="${PATH:+:}$d"; done
hash -r
sys_node_version="$(node --version 2>/dev/null || true)"
sys_major="${sys_node_version#v}"
sys_major="${sys_major%%.*}"
[[ $sys_major =~ ^[0-9]+$ ]] || sys_major=""

read_node_pin() { # sets PIN (the pin line), NODE_ARCH, NODE_VERSION, NODE_SHA512
  case "$(uname -m)" in
    x86_64 | amd64) NODE_ARCH=x64 ;;
    aarch64 | arm64) NODE_ARCH=arm64 ;;
    *) die "no pinned Node.js for this CPU ($(uname -m))" "install Node.js 22+ and put it first on PATH" ;;
  esac
  [[ -f $ROOT/scripts/node-pin.txt ]] || die "scripts/node-pin.txt is missing" "restore it from git"
  PIN="$(awk -v a="$NODE_ARCH" '!/^#/ && $2 == a { print $1, $2, $3; exit }' "$ROOT/scripts/node-pin.txt")"
  [[ -n $PIN ]] || die "scripts/node-pin.txt has no Node.js for $NODE_ARCH" "install Node.js 22+ and put it first on PATH"
  read -r NODE_VERSION _ NODE_SHA512 <<<"$PIN"
}

fetch_pinned_node() { # the official build from the npm registry into .cache/node, unless it is there
  local tmp tgz got
  if [[ -x $NODE_CACHE/bin/node && "$(cat "$NODE_CACHE/.txgate-node" 2>/dev/null || true)" == "$PIN" ]]; then
    return 0
  fi
  step "download Node.js $NODE_VERSION" "check that the npm registry is reachable (npm ping), or install Node.js 22+ yourself (TXGATE_NODE=system turns this download off)"
  have npm || die "npm is not on PATH, so Node.js $NODE_VERSION cannot be fetched"
  log "fetching node-linux-$NODE_ARCH@$NODE_VERSION (about 50 MB) with npm pack: up to a minute"
  mkdir -p "$ROOT/.cache"
  tmp="$(mktemp -d "$ROOT/.cache/node-download.XXXXXX")"
  TMP_DIRS+=("$tmp")
  npm pack "node-linux-$NODE_ARCH@$NODE_VERSION" --pack-destination "$tmp" --json >"$tmp/pack.json" \
    || { rc=$?; head -c 4000 "$tmp/pack.json" >&2; die "npm pack node-linux-$NODE_ARCH@$NODE_VERSION failed (exit $rc)"; }
  tgz="$tmp/node-linux-$NODE_ARCH-$NODE_VERSION.tgz"
  [[ -f $tgz ]] || die "npm pack did not write $(basename "$tgz")"
  got="$(sha512sum "$tgz" | cut -d' ' -f1)"
  [[ $got == "$NODE_SHA512" ]] || die "node-linux-$NODE_ARCH@$NODE_VERSION does not have the pinned checksum (its sha512 is $got)" \
    "make sure the npm registry you use is genuine; the expected sha512 is in scripts/node-pin.txt"
  mkdir "$tmp/node"
  tar -xzf "$tgz" -C "$tmp/node" --strip-components=1 package/bin/node package/include package/LICENSE \
    || die "could not unpack $(basename "$tgz")"
  got="$("$tmp/node/bin/node" --version 2>&1 || true)"
  [[ $got == "v$NODE_VERSION" ]] || die "the downloaded node does not run here: '$got'" "install Node.js 22+ yourself"
  rm -rf "$NODE_CACHE"
  mv "$tmp/node" "$NODE_CACHE"
  printf '%s\n' "$PIN" >"$NODE_CACHE/.txgate-node"
}

if [[ -n $sys_major ]] && ((sys_major >= MIN_NODE_MAJOR)); then
  : # a supported Node.js of the system's own: node-env.sh leaves it first on PATH
elif [[ ${TXGATE_NODE:-} == system ]]; then
  die "Node.js 22+ is required; the node on PATH is ${sys_node_version:-missing}, and TXGATE_NODE=system forbids fetching one" \
    "install Node.js 22, 24 or 26 and put it first on PATH, or unset TXGATE_NODE to use a pinned Node.js 24 in .cache/node"
else
  read_node_pin
  if [[ -n $sys_node_version ]]; then
    log "Node.js $sys_node_version is end-of-life (txgate supports 22, 24 and 26): using Node.js $NODE_VERSION from the npm registry in .cache/node; install Node.js 22+ to use your own"
  else
    log "no node on PATH: using Node.js $NODE_VERSION from the npm registry in .cache/node; install Node.js 22+ to use your own"
  fi
  fetch_pinned_node
  step "Node.js" "install Node.js 22, 24 or 26 and put it first on PATH"
fi
# shellcheck source=node-env.sh
source "$SCRIPT_DIR/node-env.sh" # the same choice for npm, the build, the tests and `npm start`
node_major="$(txgate_node_major)"
[[ -n $node_major ]] && ((node_major >= MIN_NODE_MAJOR)) \
  || die "the node on PATH ($(command -v node || echo none)) is ${node_major:-missing}, not 22+"
have npm || die "npm is not on PATH" "install npm (Debian: apt-get install npm), or a Node.js that includes it"

# ---------------------------------------------------------------- 3: node_modules
step "check node_modules" "reinstall: TXGATE_FORCE_INSTALL=1 bash scripts/setup.sh"
native_loads() { node -e "require('@confluentinc/kafka-javascript')" >/dev/null 2>&1; }

lock_hash() { # the lock file plus the Node ABI: a new Node major needs the native module rebuilt
  local h
  if [[ -f package-lock.json ]]; then h="$(sha256sum package-lock.json | cut -d' ' -f1)"; else h="no-lock:$(sha256sum package.json | cut -d' ' -f1)"; fi
  printf '%s abi=%s\n' "$h" "$(node -p process.versions.modules)"
}

tree_matches_lock() { # an install made without this script (no stamp): adopt it if it is the locked tree
  [[ -f package-lock.json && -f node_modules/.package-lock.json ]] || return 1
  node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages || {};
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages || {};
    for (const [path, p] of Object.entries(want)) {
      if (path === "" || p.link || p.extraneous) continue;
      const h = have[path];
      if (!h && p.optional) continue;
      if (!h || h.version !== p.version) process.exit(1);
    }
  ' 2>/dev/null
}

want="$(lock_hash)"
install=0
if [[ ! -d node_modules ]]; then
  install=1
elif [[ ${TXGATE_FORCE_INSTALL:-0} == 1 ]]; then
  install=1
elif [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]]; then
  if [[ ! -f $STAMP ]] && tree_matches_lock && native_loads; then
    printf '%s\n' "$want" >"$STAMP"
  else
    install=1
  fi
fi

if ((install)); then
  # node-gyp needs the headers of the node it builds for, and downloads them unless told where they
  # are (offline here). Use the ones next to this node (Debian's nodejs: /usr; the official build:
  # <prefix>/include/node). The environment wins over any npmrc nodedir, which may name another
  # Node.js's headers (e.g. /usr on a machine whose Debian node is older) and would build a module
  # this node cannot load.
  node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if grep -qs "^#define NODE_MAJOR_VERSION $node_major\$" "$node_prefix/include/node/node_version.h" \
    && [[ -f $node_prefix/include/node/node.h ]]; then
    export npm_config_nodedir="$node_prefix"
  fi
  # the only switch that builds the bundled librdkafka against the system libraries, offline
  export CKJS_LINKING=dynamic
  rm -f "$STAMP"
  cmd=(npm ci)
  [[ -f package-lock.json ]] || cmd=(npm install)
  step "${cmd[*]}" "read npm's error above, fix it, then run: TXGATE_FORCE_INSTALL=1 bash scripts/setup.sh"
  log "${cmd[*]} on Node.js $(node --version): installs node_modules and builds the Kafka client's native module from source (about 1-3 minutes on 2 cores)"
  t0=$SECONDS
  "${cmd[@]}" --no-audit --no-fund >&2 || die "${cmd[*]} failed (exit $?)"
  log "${cmd[*]} done in $(elapsed $((SECONDS - t0)))"
  [[ ${cmd[1]} == ci ]] || want="$(lock_hash)" # npm install has just written the lock file
fi

# ---------------------------------------------------------------- the native module loads
step "load @confluentinc/kafka-javascript" "rebuild it: TXGATE_FORCE_INSTALL=1 bash scripts/setup.sh"
if ! err="$(node -e "require('@confluentinc/kafka-javascript')" 2>&1)"; then
  printf '%s\n' "$err" | tail -n 15 >&2
  die "@confluentinc/kafka-javascript does not load with Node.js $(node --version) (its native module did not build)"
fi
((install == 0)) || printf '%s\n' "$want" >"$STAMP"

# ---------------------------------------------------------------- 4: Kafka jars (cached)
step "fetch the Kafka jars (scripts/kafka-local.sh fetch)" "check that Maven Central is reachable (proxy settings go in ~/.m2/settings.xml), then run setup again"
# the same cache location as kafka-local.sh, only to announce the first, long fetch
jars="${KAFKA_LOCAL_CACHE:-${XDG_CACHE_HOME:-${HOME:-}/.cache}/txgate/kafka}/kafka_${SCALA_BINARY:-2.13}-${KAFKA_VERSION:-4.3.1}/lib/.complete"
if [[ ! -f $jars ]]; then
  log "fetching the Kafka broker and tools jars from Maven Central (about 45 MB, up to a minute, first time only)"
fi
t0=$SECONDS
bash "$ROOT/scripts/kafka-local.sh" fetch >/dev/null || die "scripts/kafka-local.sh fetch failed (exit $?)"
if ((SECONDS - t0 >= 5)); then log "Kafka jars fetched in $(elapsed $((SECONDS - t0)))"; fi

# ---------------------------------------------------------------- 5: dist/ matches src/
step "compile src/ to dist/ (scripts/build.cjs)" "read tsc's errors above, fix them, then run setup again"
node "$ROOT/scripts/build.cjs" --if-stale >&2 || die "scripts/build.cjs --if-stale failed (exit $?)"
step "done" ""
