#!/usr/bin/env bash
# node-env.sh: picks the Node.js that txgate runs on. txgate supports the maintained lines, 22, 24
# and 26. When the `node` on PATH is older than 22 (or missing) and setup.sh has put the pinned
# official Node.js binary in <project>/.cache/node, that binary's bin/ goes first on PATH, so
# `node`, `npm` (whose launcher runs on the first `node` on PATH) and everything they spawn use it.
# A Node.js 22+ of your own always wins; TXGATE_NODE=system never uses the cached one.
#
#   source scripts/node-env.sh              adjust PATH in this shell
#   bash scripts/node-env.sh CMD ARGS...    adjust PATH, then exec CMD (same pid: signals reach CMD)
#   bash scripts/node-env.sh                print the node that would run
#
# Environment: TXGATE_ROOT (the project root; default: this checkout), TXGATE_NODE=system.

TXGATE_MIN_NODE_MAJOR=22

# Prints the major version of the `node` first on PATH, empty when there is none.
txgate_node_major() {
  local v
  v="$(node --version 2>/dev/null)" || return 0
  v="${v#v}"
  [[ ${v%%.*} =~ ^[0-9]+$ ]] && printf '%s' "${v%%.*}"
  return 0
}

txgate_node_env() {
  local root cached major
  root="${TXGATE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
  cached="$root/.cache/node/bin"
  [[ ${TXGATE_NODE:-} != system && -x $cached/node ]] || return 0
  [[ "$(command -v node 2>/dev/null)" != "$cached/node" ]] || return 0
  major="$(txgate_node_major)"
  if [[ -z $major ]] || ((major < TXGATE_MIN_NODE_MAJOR)); then
    PATH="$cached:$PATH"
    export PATH
    hash -r
  fi
  return 0
}

txgate_node_env

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  if (($# > 0)); then exec "$@"; fi
  command -v node || echo "no node on PATH" >&2
fi
