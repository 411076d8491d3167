#!/usr/bin/env bash
# test.sh: typecheck, then run the whole suite (or the test files given as arguments) with node's
# built-in runner against one dedicated single-node Kafka broker, started here for the run and
# stopped on exit whatever happens. Integration tests reach it through TXGATE_TEST_BOOTSTRAP.
# Run `bash scripts/setup.sh` first (npm test does). The tests that start gateway processes run
# bin/txgate.cjs, which runs dist/: it is recompiled here first if src/ changed since it was built.
#
# Environment (all optional):
#   TXGATE_TEST_KAFKA_PORT (39092)   the test broker's port (its controller takes the next one); when
#                                    unset and 39092 is busy, a free pair in 39100-39190 is used
#   TXGATE_TEST_CONCURRENCY (2)      test files run at once (each in its own process)
#   TXGATE_TEST_TIMEOUT_MS (600000)  per-test timeout, so a hung test cannot stall CI
#   TXGATE_SKIP_TYPECHECK=1          skip `tsc --noEmit`
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# the Node.js setup.sh chose: the pinned one in .cache/node when the system's is older than 22
# shellcheck source=node-env.sh
source scripts/node-env.sh

log() { printf 'test: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- which files
files=()
if (($# > 0)); then
  files=("$@")
else
  while IFS= read -r f; do files+=("$f"); done < <(find test/unit test/integration -name '*.test.ts' -type f 2>/dev/null | LC_ALL=C sort)
fi
((${#files[@]} > 0)) || { log "no test files found"; exit 1; }

# ---------------------------------------------------------------- the broker (background) + typecheck
# machine-wide locks (test broker ports here, shared test ports in test/support/ports.ts), outside the run's TMPDIR
export TXGATE_TEST_LOCK_DIR="${TXGATE_TEST_LOCK_DIR:-${TMPDIR:-/tmp}}"
LOCK_DIR="$TXGATE_TEST_LOCK_DIR"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_lock_fd=""
# Claims a broker port pair for this run: a free pair whose lock file no other run holds. The lock
# (flock, released when every holder exits) closes the race between two runs starting together.
claim_port() { # port -> 0 if claimed
  local p="$1" fd
  port_free "$p" && port_free $((p + 1)) || return 1
  command -v flock >/dev/null 2>&1 || return 0
  exec {fd}>"$LOCK_DIR/txgate-test-broker-$p.lock"
  if flock -n "$fd"; then
    port_lock_fd=$fd
    return 0
  fi
  exec {fd}>&-
  return 1
}
release_port() { [[ -z $port_lock_fd ]] || exec {port_lock_fd}>&-; port_lock_fd=""; }
tried_ports=" "
pick_port() { # sets KAFKA_PORT: 39092, else the next free pair in 39100-39190
  local p
  for p in 39092 $(seq 39100 2 39190); do
    [[ $tried_ports == *" $p "* ]] && continue
    tried_ports+="$p "
    if claim_port "$p"; then
      KAFKA_PORT=$p
      [[ $p == 39092 ]] || log "port 39092 is busy (another test run?): the test broker uses $p"
      return 0
    fi
  done
  log "ports 39092-39191 are all busy; set TXGATE_TEST_KAFKA_PORT"
  exit 1
}
explicit_port=0
if [[ -n ${TXGATE_TEST_KAFKA_PORT:-} ]]; then
  KAFKA_PORT="$TXGATE_TEST_KAFKA_PORT"
  explicit_port=1
else
  pick_port
fi
export KAFKA_PORT
unset KAFKA_CONTROLLER_PORT KAFKA_BOOTSTRAP
# Everything of this run lives in RUN_DIR: the test broker's state, and (through TMPDIR) the
# state dirs of brokers that tests start themselves, so leftovers can be found and stopped.
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/txgate-test-run.XXXXXX")"
mkdir -p "$RUN_DIR/tmp"
export KAFKA_LOCAL_STATE="$RUN_DIR/kafka"
broker_log="$RUN_DIR/broker-start.log"
broker_pid=""
runner_pid=""

stop_leftover_brokers() { # brokers a test started in RUN_DIR and could not stop (killed run, crashed test)
  local f pid n=0
  while IFS= read -r f; do
    pid="$(cat "$f" 2>/dev/null)" || continue
    [[ -n $pid && -r /proc/$pid/cmdline ]] || continue
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$RUN_DIR"* ]] || continue
    kill -KILL "$pid" 2>/dev/null && n=$((n + 1))
  done < <(find "$RUN_DIR" -name pid -type f 2>/dev/null)
  ((n == 0)) || log "stopped $n broker(s) that tests left running"
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  # the runner has its own process group: this reaches the test files' processes too
  if [[ -n $runner_pid ]]; then
    kill -TERM -- "-$runner_pid" 2>/dev/null || kill -TERM "$runner_pid" 2>/dev/null
    wait "$runner_pid" 2>/dev/null
  fi
  # a start still in progress: stop it; the launcher has written the pid file that stop uses
  [[ -n $broker_pid ]] && kill -TERM "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  bash scripts/kafka-local.sh stop >/dev/null 2>&1 || log "could not stop the test broker (state in $KAFKA_LOCAL_STATE)"
  stop_leftover_brokers
  rm -rf "$RUN_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting the test broker on 127.0.0.1:$KAFKA_PORT"
bash scripts/kafka-local.sh start >"$broker_log" 2>&1 &
broker_pid=$!

# the compiled CLI that gateway tests spawn: the current src/, never a stale dist/ (a no-op when it matches)
node scripts/build.cjs --if-stale || { log "could not compile src/ to dist/ (tsc's errors are above)"; exit 1; }

typecheck_rc=0
if [[ ${TXGATE_SKIP_TYPECHECK:-0} != 1 ]]; then
  log "typecheck (tsc --noEmit)"
  node_modules/.bin/tsc --noEmit -p . || typecheck_rc=$?
  ((typecheck_rc == 0)) || log "TYPECHECK FAILED (tests still run; the run fails)"
fi

broker_rc=0
wait "$broker_pid" || broker_rc=$?
broker_pid=""
# a port taken between our check and the broker's bind (by a process that is not a test run,
# e.g. a client's ephemeral port): try the next pair, unless the port was chosen explicitly
for attempt in 1 2; do
  ((broker_rc != 0 && explicit_port == 0)) && grep -q 'already in use' "$broker_log" || break
  log "port $KAFKA_PORT was taken while the broker started; trying another"
  bash scripts/kafka-local.sh stop >/dev/null 2>&1 || true
  release_port
  pick_port
  broker_rc=0
  bash scripts/kafka-local.sh start >"$broker_log" 2>&1 || broker_rc=$?
done
if ((broker_rc != 0)); then
  cat "$broker_log" >&2
  log "the test broker did not start"
  exit 1
fi
export TXGATE_TEST_KAFKA_PORT="$KAFKA_PORT"
export TXGATE_TEST_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
log "test broker ready at $TXGATE_TEST_BOOTSTRAP"

# ---------------------------------------------------------------- the runner
# Tests drive blocking librdkafka transactional calls, each holding a libuv pool thread (see bin/txgate.cjs).
export UV_THREADPOOL_SIZE="${UV_THREADPOOL_SIZE:-64}"
# --test-force-exit: a file whose tests are done exits even if a handle leaks (a hung file would stall CI).
# Run in the background (in its own process group, when setsid exists) and wait, so a
# SIGTERM/SIGINT reaches our trap at once and the trap can stop every test process.
launcher=()
command -v setsid >/dev/null 2>&1 && launcher=(setsid)
TMPDIR="$RUN_DIR/tmp" "${launcher[@]}" node --import tsx --test \
  --test-concurrency="${TXGATE_TEST_CONCURRENCY:-2}" \
  --test-timeout="${TXGATE_TEST_TIMEOUT_MS:-600000}" \
  --test-force-exit \
  --test-reporter=spec --test-reporter-destination=stdout \
  "${files[@]}" &
runner_pid=$!
rc=0
wait "$runner_pid" || rc=$?
runner_pid=""

if ((rc == 0 && typecheck_rc != 0)); then
  log "tests passed but the typecheck failed"
  rc=$typecheck_rc
fi
exit "$rc"
