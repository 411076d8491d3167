#!/usr/bin/env bash
# setup.sh: make this checkout runnable. Idempotent; when everything is in place it only checks
# (well under 2 s). `npm start` and `npm test` call it first, so nobody has to run it by hand.
#
#   1. Java 17+ and Maven (Kafka's broker runs on the JVM; Maven resolves its jars), from Debian
#      packages when missing and running as root.
#   2. The Debian packages the Kafka client's native build needs (OpenSSL, zlib, zstd, lz4, SASL,
#      a C++ toolchain, python3 for node-gyp).
#   3. node_modules, with @confluentinc/kafka-javascript built from its bundled librdkafka
#      against those system libraries (CKJS_LINKING=dynamic): its default install downloads
#      prebuilt binaries and dependency sources from GitHub, which is not reachable here.
#   4. The Kafka jars, resolved once from Maven Central into a cache (scripts/kafka-local.sh fetch).
#
# Environment: TXGATE_FORCE_INSTALL=1 reinstalls node_modules even when the lock file is unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STAMP="node_modules/.txgate-install-stamp"
NATIVE_DEPS=(libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev build-essential python3)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

APT_UPDATED=0
apt_install() { # packages... (root + apt-get only; otherwise a clear error naming them)
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing system packages: $*
       install them, e.g.: sudo apt-get update && sudo apt-get install -y $*"
  fi
  if ((APT_UPDATED == 0)); then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
}

java_major() { # prints the major version of `java` on PATH, empty when there is none
  command -v java >/dev/null 2>&1 || return 0
  java -version 2>&1 | sed -E -n '1s/.* version "(1\.)?([0-9]+).*/\2/p'
}

# ---------------------------------------------------------------- 1 + 2: system packages
missing=()
v="$(java_major)"
if [[ -z $v || $v -lt 17 ]]; then
  missing+=(openjdk-17-jdk-headless)
fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# kcat is what the examples `txgate start` prints use; nice to have, so only installed when we can.
if ! command -v kcat >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  missing+=(kcat)
fi
if command -v dpkg-query >/dev/null 2>&1; then
  # dpkg-query prints one status line per known package; unknown ones only go to stderr
  installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${NATIVE_DEPS[@]}" 2>/dev/null | awk '$NF == "installed" { print $1 }' | sed 's/:.*//')"
  for p in "${NATIVE_DEPS[@]}"; do
    grep -qx -- "$p" <<<"$installed" || missing+=("$p")
  done
else
  log "not a Debian system: make sure OpenSSL, zlib, zstd, lz4 and SASL headers, a C++ toolchain and python3 are installed"
fi
if ((${#missing[@]} > 0)); then
  apt_install "${missing[@]}"
  v="$(java_major)"
  [[ -n $v && $v -ge 17 ]] || die "Java 17+ is required (found: ${v:-none}); put a Java 17+ 'java' first on PATH"
  command -v mvn >/dev/null 2>&1 || die "Maven ('mvn') is required to fetch the Kafka jars"
fi

# ---------------------------------------------------------------- 3: node_modules
command -v node >/dev/null 2>&1 || die "node is not on PATH (Node.js 20+ is required)"
command -v npm >/dev/null 2>&1 || die "npm is not on PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js 20+ is required (found $(node --version))"

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
  # node-gyp downloads Node's headers unless told where they are; Debian's nodejs ships them in /usr
  if [[ -z ${npm_config_nodedir:-}${NPM_CONFIG_NODEDIR:-} && -f /usr/include/node/node.h ]] \
    && ! grep -qs '^[[:space:]]*nodedir[[:space:]]*=' "$HOME/.npmrc" "$ROOT/.npmrc"; then
    export npm_config_nodedir=/usr
  fi
  # the only switch that builds the bundled librdkafka against the system libraries, offline
  export CKJS_LINKING=dynamic
  rm -f "$STAMP"
  if [[ -f package-lock.json ]]; then
    log "npm ci (builds the Kafka client's native module from source: about 2-3 minutes the first time)"
    npm ci --no-audit --no-fund >&2 || die "npm ci failed (see above)"
  else
    log "npm install (builds the Kafka client's native module from source: about 2-3 minutes the first time)"
    npm install --no-audit --no-fund >&2 || die "npm install failed (see above)"
    want="$(lock_hash)"
  fi
fi

# ---------------------------------------------------------------- 4: the native module loads
if ! err="$(node -e "require('@confluentinc/kafka-javascript')" 2>&1)"; then
  printf '%s\n' "$err" | tail -n 15 >&2
  die "@confluentinc/kafka-javascript does not load (its native module did not build).
       Rebuild it with: TXGATE_FORCE_INSTALL=1 bash scripts/setup.sh"
fi
((install == 0)) || printf '%s\n' "$want" >"$STAMP"

# ---------------------------------------------------------------- 5: Kafka jars (cached)
bash "$ROOT/scripts/kafka-local.sh" fetch >/dev/null || die "could not fetch the Kafka jars (see above)"
