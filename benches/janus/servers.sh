# Janus as two servers of scripts/bench.sh, which sources this file:
#   janus         Janus's default configuration (a loop thread per handle)
#   janus_loops1  event_loops = 1 (one shared loop thread)
# e.g. SERVERS="sluice bare janus janus_loops1" scripts/bench.sh. Installs Janus (apt-get, as
# root) when it is missing. Each instance runs from $OUT/janus-<configuration> (its log is
# janus.log there), pinned to $SERVER_CORE.

JANUS_SH=benches/janus/janus.sh
TARGET_janus=janus
TARGET_janus_loops1=janus

start_janus() { start_janus_as default 18088; }
start_janus_loops1() { start_janus_as event-loops-1 18089; }
stop_janus() { stop_janus_instance; }
stop_janus_loops1() { stop_janus_instance; }

start_janus_as() {
  command -v janus >/dev/null || "$JANUS_SH" install
  JANUS_WORKDIR="$OUT/janus-$1"
  SERVER_PID=$(JANUS_CPUS="$SERVER_CORE" "$JANUS_SH" start "$1" "$2" "$JANUS_WORKDIR")
  SERVER_URL="http://127.0.0.1:$2/janus"
}

stop_janus_instance() {
  "$JANUS_SH" stop "$JANUS_WORKDIR"
  SERVER_PID=""
}
