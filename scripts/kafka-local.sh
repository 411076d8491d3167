#!/usr/bin/env bash
# kafka-local.sh: txgate's launcher for a REAL Apache Kafka broker (KRaft, no ZooKeeper, no Docker)
# on 127.0.0.1, using jars that Maven resolves once from Maven Central into a cache. Two layouts:
#   single node : one combined broker+controller JVM   (bootstrap 127.0.0.1:19092)
#   cluster     : three combined broker+controller JVMs (bootstrap 127.0.0.1:29092,29094,29096),
#                 RF=3, min.insync.replicas=2, for fault injection (kill a node, restart it)
#
# Usage:
#   kafka-local.sh fetch                   resolve jars into the cache (a second run does nothing)
#   kafka-local.sh start | stop | status   single node (start is idempotent; stop deletes its data)
#   kafka-local.sh own PID                 record process PID as the running single node's owner (status
#                                          shows it, and whether that process is still alive)
#   kafka-local.sh kill [--term]           SIGKILL (a crash) or SIGTERM the single node, keeping its data
#   kafka-local.sh restart                 start the single node again on its existing data (after kill)
#   kafka-local.sh bootstrap               print the single node's bootstrap address
#   kafka-local.sh cluster-start | cluster-stop | cluster-status | cluster-bootstrap
#   kafka-local.sh node-kill N [--term]    SIGKILL (default: a crash) or SIGTERM (graceful) cluster node N (1..3)
#   kafka-local.sh node-start N            restart cluster node N on its existing data (no re-format)
#   kafka-local.sh topics ARGS...          org.apache.kafka.tools.TopicCommand (adds --bootstrap-server)
#   kafka-local.sh transactions ARGS...    org.apache.kafka.tools.TransactionsCommand (e.g. list; describe --transactional-id X)
#   kafka-local.sh perf-txn [records] [record-size] [txn-ms] [topic]
#                                          org.apache.kafka.tools.ProducerPerformance, transactional
#   kafka-local.sh run-class MAIN ARGS...  any class on the Kafka classpath
#
# Environment (all optional):
#   KAFKA_VERSION (4.3.1)  LOG4J2_VERSION (2.25.4)  KAFKA_LOCAL_CACHE (~/.cache/txgate/kafka)
#   KAFKA_LOCAL_STATE (/tmp/txgate-kafka-$UID)  KAFKA_PORT (19092)  KAFKA_CONTROLLER_PORT (KAFKA_PORT+1)
#   KAFKA_CLUSTER_BASE_PORT (29092)  KAFKA_HEAP_OPTS (-Xms256m -Xmx512m)  KAFKA_START_TIMEOUT (90 s)
#   KAFKA_STOP_TIMEOUT (30 s)  KAFKA_LOG_LEVEL (WARN)  KAFKA_NUM_PARTITIONS (1 single / 3 cluster)
#   KAFKA_EXTRA_PROPS (newline-separated key=value lines appended to every server.properties)
#   KAFKA_FORMAT_ARGS (extra kafka-storage format flags, e.g. "--feature transaction.version=0")
#   KAFKA_BOOTSTRAP (tools' target; default the single node)  KAFKA_LOCAL_MVN_ARGS (extra mvn args, e.g. -s settings.xml)
#   KAFKA_KEEP_DATA=1 (stop/cluster-stop keep the data directories)
#   KAFKA_OWNER_PID (start: record this process as the owner of the node it launches, as `own` does)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
SCALA_BINARY="${SCALA_BINARY:-2.13}"
LOG4J2_VERSION="${LOG4J2_VERSION:-2.25.4}"     # 4.x: the broker logs through log4j2
SLF4J_VERSION="${SLF4J_VERSION:-1.7.36}"       # Kafka 3.x and 4.x both use the slf4j 1.7 API
RELOAD4J_VERSION="${RELOAD4J_VERSION:-1.2.25}" # only for the 3.x fallback
DEP_PLUGIN="${DEP_PLUGIN:-org.apache.maven.plugins:maven-dependency-plugin:3.8.1}"

CACHE_DIR="${KAFKA_LOCAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/txgate/kafka}"
STATE_DIR="${KAFKA_LOCAL_STATE:-${TMPDIR:-/tmp}/txgate-kafka-$(id -u)}"
LIB_DIR="$CACHE_DIR/kafka_${SCALA_BINARY}-${KAFKA_VERSION}/lib"

HOST=127.0.0.1
PORT="${KAFKA_PORT:-19092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
CLUSTER_BASE_PORT="${KAFKA_CLUSTER_BASE_PORT:-29092}"
CLUSTER_SIZE=3
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
# The flags bin/kafka-run-class.sh uses by default.
JVM_PERF_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
LOG_LEVEL="${KAFKA_LOG_LEVEL:-WARN}"
EXTRA_PROPS="${KAFKA_EXTRA_PROPS:-}"
FORMAT_ARGS="${KAFKA_FORMAT_ARGS:-}"   # e.g. "--feature transaction.version=0" (classic transaction protocol)
STARTED_LINE="Kafka Server started"   # logged by kafka.server.KafkaRaftServer once the broker is unfenced and serving

log() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
is_kafka3() { [[ $KAFKA_VERSION == 3.* ]]; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH${2:+ ($2)}"; }

# ---------------------------------------------------------------- jars (Maven, cached)
pom_dep() { # groupId artifactId version [exclusions-xml]
  printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version>%s</dependency>\n' "$1" "$2" "$3" "${4:-}"
}

write_pom() {
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo '<project xmlns="http://maven.apache.org/POM/4.0.0">'
    echo '  <modelVersion>4.0.0</modelVersion>'
    echo '  <groupId>local.kafka</groupId><artifactId>kafka-local-classpath</artifactId><version>1</version>'
    echo '  <packaging>pom</packaging>'
    echo '  <dependencies>'
    # The broker: kafka_2.13 pulls kafka-server, -metadata, -raft, -storage, -group-coordinator,
    # -transaction-coordinator, -share-coordinator, -server-common, -clients, scala-library, jackson...
    # (all as runtime scope in its POM, which copy-dependencies follows).
    pom_dep org.apache.kafka "kafka_${SCALA_BINARY}" "$KAFKA_VERSION"
    # The CLI tools (ProducerPerformance, TransactionsCommand, TopicCommand). connect-runtime (Jetty,
    # Jersey...) is only needed by connect-plugin-path, so it is left out.
    pom_dep org.apache.kafka kafka-tools "$KAFKA_VERSION" \
      '<exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions>'
    # Logging backend: Kafka declares it compileOnly/releaseOnly, so it is NOT in the published POMs
    # (kafka-server 4.1+ brings log4j-api/core, 4.0 brings nothing, and no version brings the slf4j binding).
    pom_dep org.slf4j slf4j-api "$SLF4J_VERSION"
    if is_kafka3; then
      pom_dep org.slf4j slf4j-reload4j "$SLF4J_VERSION"
      pom_dep ch.qos.reload4j reload4j "$RELOAD4J_VERSION"
    else
      pom_dep org.apache.logging.log4j log4j-api "$LOG4J2_VERSION"
      pom_dep org.apache.logging.log4j log4j-core "$LOG4J2_VERSION"
      pom_dep org.apache.logging.log4j log4j-slf4j-impl "$LOG4J2_VERSION"
    fi
    echo '  </dependencies>'
    echo '</project>'
  } >"$1"
}

fetch_jars() {
  [[ -f $LIB_DIR/.complete ]] && return 0
  need mvn "apt-get install maven"
  mkdir -p "$CACHE_DIR"
  local lock="$CACHE_DIR/.lock"
  exec 9>"$lock"
  command -v flock >/dev/null 2>&1 && flock 9   # two test runs resolving at once
  if [[ ! -f $LIB_DIR/.complete ]]; then
    local proj tmp
    proj="$(dirname "$LIB_DIR")/maven"
    tmp="$(dirname "$LIB_DIR")/lib.partial"
    rm -rf "$proj" "$tmp"
    mkdir -p "$proj"
    write_pom "$proj/pom.xml"
    log "resolving Kafka $KAFKA_VERSION jars with Maven (first run only)"
    # shellcheck disable=SC2086
    # its output (colour codes included, whatever the flags) only matters when it fails
    mvn -B -q -Dstyle.color=never ${KAFKA_LOCAL_MVN_ARGS:-} -f "$proj/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
      -DoutputDirectory="$tmp" -DincludeScope=runtime >"$proj/mvn.log" 2>&1 \
      || { tail -n 30 "$proj/mvn.log" >&2; die "mvn could not resolve Kafka $KAFKA_VERSION (is Maven Central reachable? its output is above, all of it in $proj/mvn.log)"; }
    [[ -f $tmp/kafka_${SCALA_BINARY}-${KAFKA_VERSION}.jar ]] || die "kafka_${SCALA_BINARY}-${KAFKA_VERSION}.jar missing after mvn"
    rm -rf "$LIB_DIR"
    mv "$tmp" "$LIB_DIR"
    touch "$LIB_DIR/.complete"
    log "$(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $LIB_DIR"
  fi
  exec 9>&-
}

classpath() { printf '%s/*' "$LIB_DIR"; }

# ---------------------------------------------------------------- logging config
write_log_config() { # sets LOG_OPT: the JVM flag pointing the logging backend at a quiet config
  mkdir -p "$STATE_DIR"
  local f
  if is_kafka3; then
    f="$STATE_DIR/log4j-$LOG_LEVEL.properties"
    [[ -f $f ]] || cat >"$f.$$" <<EOF
log4j.rootLogger=$LOG_LEVEL, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
    LOG_OPT="-Dlog4j.configuration=file:$f"
  else
    f="$STATE_DIR/log4j2-$LOG_LEVEL.properties"
    [[ -f $f ]] || cat >"$f.$$" <<EOF
status = warn
name = kafka-local
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $LOG_LEVEL
rootLogger.appenderRef.stderr.ref = STDERR
# keep the single "Kafka Server started" line, used as the readiness signal
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
EOF
    LOG_OPT="-Dlog4j2.configurationFile=$f"
  fi
  [[ -f $f.$$ ]] && mv -f "$f.$$" "$f"   # atomic: a concurrently starting JVM never reads half a file
  return 0
}

check_java() {
  need java "Kafka 4.x brokers need Java 17+"
  local v
  v="$(java -version 2>&1 | sed -E -n '1s/.* version "([0-9]+).*/\1/p')"
  if ! is_kafka3 && [[ -n $v ]] && ((v < 17)); then die "Kafka $KAFKA_VERSION needs Java 17+, found $v"; fi
  return 0
}

# ---------------------------------------------------------------- helpers
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

gen_cluster_id() { # 16 random bytes, URL-safe base64, 22 chars, not starting with '-' (argparse would see an option)
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ ${#id} -eq 22 && $id != -* ]] && { printf '%s' "$id"; return; }
  done
}

node_pid() { # dir -> pid of OUR broker (checks /proc cmdline, so a recycled pid is never touched)
  local dir="$1" pid cmd
  [[ -f $dir/pid ]] || return 1
  pid="$(cat "$dir/pid")"
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ $cmd == *"$dir/server.properties"* ]] || return 1
  printf '%s' "$pid"
}

common_props() { # dir
  cat <<EOF
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$1/data
# topics are created on purpose (an unknown topic is a client error, not a new topic)
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# the log cleaner (needed for __consumer_offsets) allocates this on the heap; default is 128 MiB
log.cleaner.dedupe.buffer.size=16777216
num.recovery.threads.per.data.dir=1
EOF
}

write_single_config() { # dir
  local dir="$1"
  {
    cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
num.partitions=${KAFKA_NUM_PARTITIONS:-1}
default.replication.factor=1
min.insync.replicas=1
# one broker: every internal topic must have RF 1 (the defaults of 3 make groups/transactions fail forever)
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
    common_props "$dir"
    if [[ -n $EXTRA_PROPS ]]; then printf '%s\n' "$EXTRA_PROPS"; fi
  } >"$dir/server.properties"
}

cluster_ports() { # i -> "brokerPort controllerPort"
  local b=$((CLUSTER_BASE_PORT + ($1 - 1) * 2))
  printf '%s %s' "$b" $((b + 1))
}

write_cluster_config() { # i dir
  local i="$1" dir="$2" bp cp voters="" j jc
  read -r bp cp <<<"$(cluster_ports "$i")"
  for ((j = 1; j <= CLUSTER_SIZE; j++)); do
    read -r _ jc <<<"$(cluster_ports "$j")"
    voters+="${voters:+,}$j@$HOST:$jc"
  done
  {
    cat <<EOF
process.roles=broker,controller
node.id=$i
# static quorum (kraft.version 0): no --standalone/--initial-controllers needed when formatting
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$bp,CONTROLLER://$HOST:$cp
advertised.listeners=PLAINTEXT://$HOST:$bp,CONTROLLER://$HOST:$cp
num.partitions=${KAFKA_NUM_PARTITIONS:-3}
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
EOF
    common_props "$dir"
    if [[ -n $EXTRA_PROPS ]]; then printf '%s\n' "$EXTRA_PROPS"; fi
  } >"$dir/server.properties"
}

format_node() { # dir cluster-id [extra StorageTool flags...]
  local dir="$1" cid="$2"
  shift 2
  # shellcheck disable=SC2086
  java -Xmx256m "$LOG_OPT" -cp "$(classpath)" kafka.tools.StorageTool format \
    -t "$cid" -c "$dir/server.properties" "$@" ${FORMAT_ARGS} >"$dir/format.out" 2>&1 \
    || { cat "$dir/format.out" >&2; die "storage format failed for $dir"; }
}

launch_node() { # dir  (background, detached, all fds redirected so callers like execSync return)
  local dir="$1"
  mkdir -p "$dir/logs"
  rm -f "$dir/pid"
  echo "---- start $(date -Is)" >>"$dir/server.out"
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  # shellcheck disable=SC2016,SC2086
  "${launcher[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/pid" \
    java $HEAP_OPTS $JVM_PERF_OPTS "$LOG_OPT" "-Dkafka.logs.dir=$dir/logs" \
    -cp "$(classpath)" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/server.out" 2>&1 &
  local t=0
  until [[ -s $dir/pid ]]; do
    sleep 0.05
    t=$((t + 1))
    ((t < 100)) || die "launcher did not write $dir/pid"
  done
}

wait_ready() { # dir port
  local dir="$1" port="$2" deadline=$((SECONDS + START_TIMEOUT)) pid starts
  pid="$(cat "$dir/pid")"
  starts="$(grep -c -- '---- start' "$dir/server.out" || true)"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$dir/server.out" >&2
      die "broker in $dir exited during startup"
    fi
    # only count a STARTED line written after the latest launch marker
    if awk -v n="$starts" -v s="$STARTED_LINE" '/^---- start/{c++} c==n && index($0,s){f=1} END{exit !f}' "$dir/server.out" \
      && port_open "$HOST" "$port"; then
      return 0
    fi
    sleep 0.2
  done
  tail -n 40 "$dir/server.out" >&2
  die "broker in $dir not ready after ${START_TIMEOUT}s"
}

stop_node() { # dir signal
  local dir="$1" sig="${2:-TERM}" pid t=0
  pid="$(node_pid "$dir")" || { rm -f "$dir/pid"; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    t=$((t + 1))
    if ((t > STOP_TIMEOUT * 5)); then
      log "pid $pid ignored SIG$sig for ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$dir/pid"
}

# ---------------------------------------------------------------- single node
single_dir() { printf '%s/single' "$STATE_DIR"; }

# The owner of a single node is the process that stops it when it exits (txgate start). The marker
# holds its pid and start time, so a recycled pid never passes for the owner.
proc_start_time() { # pid -> its start time in clock ticks since boot (/proc/PID/stat field 22); fails if it is gone
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }" # the command name (field 2) may hold spaces and parentheses
  # shellcheck disable=SC2086
  set -- $stat
  [[ $1 != Z && -n ${20:-} ]] || return 1 # a zombie has exited
  printf '%s' "${20}"
}

write_owner() { # dir pid
  local started
  [[ $2 =~ ^[0-9]+$ ]] || die "owner pid must be a number, got '$2'"
  started="$(proc_start_time "$2")" || die "no process with pid $2"
  printf '%s %s\n' "$2" "$started" >"$1/owner.tmp"
  mv -f "$1/owner.tmp" "$1/owner"
}

owner_status() { # dir -> " owner=PID (alive)" or " owner=PID (gone)"; nothing without a marker
  local pid started now
  [[ -f $1/owner ]] || return 0
  read -r pid started <"$1/owner" || true
  [[ -n ${pid:-} ]] || return 0
  now="$(proc_start_time "$pid")" || now=""
  if [[ -n $now && $now == "${started:-}" ]]; then printf ' owner=%s (alive)' "$pid"; else printf ' owner=%s (gone)' "$pid"; fi
}

cmd_start() {
  local dir
  dir="$(single_dir)"
  if node_pid "$dir" >/dev/null; then
    printf '%s:%s\n' "$HOST" "$PORT"
    return 0
  fi
  fetch_jars
  port_open "$HOST" "$PORT" && die "port $PORT is already in use"
  port_open "$HOST" "$CONTROLLER_PORT" && die "port $CONTROLLER_PORT is already in use"
  rm -rf "$dir"
  mkdir -p "$dir"
  # before the launch: an owner killed while this script runs is still recorded (as gone)
  [[ -z ${KAFKA_OWNER_PID:-} ]] || write_owner "$dir" "$KAFKA_OWNER_PID"
  write_single_config "$dir"
  # dynamic quorum (KIP-853): controller.quorum.bootstrap.servers + --standalone
  format_node "$dir" "$(gen_cluster_id)" --standalone
  launch_node "$dir"
  wait_ready "$dir" "$PORT"
  log "broker up (pid $(cat "$dir/pid"), log $dir/server.out)"
  printf '%s:%s\n' "$HOST" "$PORT"
}

cmd_stop() {
  local dir
  dir="$(single_dir)"
  stop_node "$dir" TERM
  rm -f "$dir/owner"
  [[ ${KAFKA_KEEP_DATA:-0} == 1 ]] || rm -rf "$dir"
}

cmd_own() { # PID
  local dir
  dir="$(single_dir)"
  node_pid "$dir" >/dev/null || die "the single node is not running"
  write_owner "$dir" "${1:-}"
}

cmd_kill() { # [--term]
  local sig=KILL
  [[ ${1:-} == --term ]] && sig=TERM
  stop_node "$(single_dir)" "$sig"
}

cmd_restart() {
  local dir
  dir="$(single_dir)"
  [[ -f $dir/server.properties && -f $dir/data/meta.properties ]] || die "the single node was never formatted (start first)"
  node_pid "$dir" >/dev/null && die "the single node is already running"
  port_open "$HOST" "$PORT" && die "port $PORT is already in use"
  launch_node "$dir"
  wait_ready "$dir" "$PORT"
  log "broker back (pid $(cat "$dir/pid"))"
  printf '%s:%s\n' "$HOST" "$PORT"
}

cmd_status() {
  local pid
  if pid="$(node_pid "$(single_dir)")"; then
    echo "running pid=$pid bootstrap=$HOST:$PORT$(owner_status "$(single_dir)")"
  else
    echo "stopped"
    return 1
  fi
}

# ---------------------------------------------------------------- 3-node cluster
node_dir() { printf '%s/cluster/node%s' "$STATE_DIR" "$1"; }
check_node() { [[ $1 =~ ^[1-3]$ ]] || die "node must be 1..$CLUSTER_SIZE"; }

cluster_bootstrap() {
  local i out="" bp cp
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    read -r bp cp <<<"$(cluster_ports "$i")"
    out+="${out:+,}$HOST:$bp"
  done
  printf '%s' "$out"
}

cmd_cluster_start() {
  local i dir cid bp cp
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    if node_pid "$(node_dir "$i")" >/dev/null; then
      die "cluster already running (cluster-stop first)"
    fi
  done
  fetch_jars
  rm -rf "$STATE_DIR/cluster"
  cid="$(gen_cluster_id)"
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    dir="$(node_dir "$i")"
    read -r bp cp <<<"$(cluster_ports "$i")"
    port_open "$HOST" "$bp" && die "port $bp is already in use"
    port_open "$HOST" "$cp" && die "port $cp is already in use"
    mkdir -p "$dir"
    write_cluster_config "$i" "$dir"
  done
  # the same cluster id on every node; the three formats run in parallel
  local pids=()
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    format_node "$(node_dir "$i")" "$cid" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "format failed"; done
  # all nodes must be launched before any can finish starting: a quorum needs 2 of 3 controllers
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do launch_node "$(node_dir "$i")"; done
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    read -r bp cp <<<"$(cluster_ports "$i")"
    wait_ready "$(node_dir "$i")" "$bp"
  done
  log "cluster up (state in $STATE_DIR/cluster)"
  cluster_bootstrap
  echo
}

cmd_cluster_stop() {
  local i pids=()
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    stop_node "$(node_dir "$i")" TERM &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  [[ ${KAFKA_KEEP_DATA:-0} == 1 ]] || rm -rf "$STATE_DIR/cluster"
}

cmd_cluster_status() {
  local i pid rc=0 bp cp
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    read -r bp cp <<<"$(cluster_ports "$i")"
    if pid="$(node_pid "$(node_dir "$i")")"; then
      echo "node$i running pid=$pid $HOST:$bp controller=$HOST:$cp"
    else
      echo "node$i stopped $HOST:$bp"
      rc=1
    fi
  done
  return "$rc"
}

cmd_node_kill() { # N [--term]
  check_node "${1:-}"
  local sig=KILL
  [[ ${2:-} == --term ]] && sig=TERM
  stop_node "$(node_dir "$1")" "$sig"
}

cmd_node_start() { # N
  check_node "${1:-}"
  local dir bp cp
  dir="$(node_dir "$1")"
  [[ -f $dir/server.properties && -f $dir/data/meta.properties ]] || die "node $1 was never formatted (cluster-start first)"
  node_pid "$dir" >/dev/null && die "node $1 is already running"
  read -r bp cp <<<"$(cluster_ports "$1")"
  launch_node "$dir"
  wait_ready "$dir" "$bp"
  log "node $1 back (pid $(cat "$dir/pid"))"
}

# ---------------------------------------------------------------- tools
tool_bootstrap() { printf '%s' "${KAFKA_BOOTSTRAP:-$HOST:$PORT}"; }

run_class() { # MAIN ARGS...
  fetch_jars
  java -Xmx512m "$LOG_OPT" -cp "$(classpath)" "$@"
}

cmd_perf_txn() { # [records] [record-size] [txn-ms] [topic]
  local n="${1:-200000}" size="${2:-512}" txn_ms="${3:-100}" topic="${4:-perf-txn}" bs
  bs="$(tool_bootstrap)"
  run_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$bs" --create --if-not-exists \
    --topic "$topic" --partitions "${KAFKA_NUM_PARTITIONS:-3}" >/dev/null
  # --producer-props works on 3.9 and every 4.x (4.2+ also has --bootstrap-server/--command-property)
  run_class org.apache.kafka.tools.ProducerPerformance \
    --topic "$topic" --num-records "$n" --record-size "$size" --throughput -1 \
    --producer-props "bootstrap.servers=$bs" acks=all linger.ms=5 batch.size=65536 \
    --transactional-id "perf-txn-$$" --transaction-duration-ms "$txn_ms"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    start | restart | cluster-start | node-start | topics | transactions | perf-txn | run-class)
      check_java
      write_log_config
      ;;
  esac
  case "$cmd" in
    fetch) fetch_jars; echo "$LIB_DIR" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    kill) cmd_kill "$@" ;;
    restart) cmd_restart ;;
    status) cmd_status ;;
    own) cmd_own "$@" ;;
    bootstrap) echo "$HOST:$PORT" ;;
    cluster-start) cmd_cluster_start ;;
    cluster-stop) cmd_cluster_stop ;;
    cluster-status) cmd_cluster_status ;;
    cluster-bootstrap) cluster_bootstrap; echo ;;
    node-kill) cmd_node_kill "$@" ;;
    node-start) cmd_node_start "$@" ;;
    topics) run_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$(tool_bootstrap)" "$@" ;;
    transactions) run_class org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$(tool_bootstrap)" "$@" ;;
    perf-txn) cmd_perf_txn "$@" ;;
    run-class) run_class "$@" ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
  esac
}

main "$@"
