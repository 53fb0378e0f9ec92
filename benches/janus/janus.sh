#!/usr/bin/env bash
# Janus (Debian's package) for Sluice's side-by-side benchmarks, on loopback only.
#
#   janus.sh install
#       apt-get installs janus (1.1.x, with its videoroom plugin and HTTP transport) and gcc.
#   janus.sh start <default|event-loops-1> <http-port> <workdir>
#       Renders the config templates next to this script into <workdir>/conf, builds the
#       LD_PRELOAD shim into <workdir>, starts Janus in the background (log: <workdir>/janus.log),
#       waits until its HTTP API answers on 127.0.0.1:<http-port>/janus and prints its pid.
#       `default` keeps Janus's thread per handle; `event-loops-1` sets `event_loops = 1` (one
#       shared loop thread for every handle).
#   janus.sh stop <workdir|pid>
#       Stops the Janus started with that work directory (or that pid) and waits for it to exit.
#
# Environment: JANUS_DEBUG_LEVEL (default 3: warnings and errors), JANUS_NOFILE (open-file limit
# for Janus, default 1048576, capped by the hard limit when it cannot be raised: every handle
# holds a UDP socket and, in the default configuration, a loop thread with its wakeup fd),
# JANUS_CPUS (a taskset CPU list to pin Janus to, e.g. 0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
janus_lib="/usr/lib/x86_64-linux-gnu/janus"

usage() {
    sed -n "2,18p" "${BASH_SOURCE[0]}" | sed "s/^# \{0,1\}//" >&2
    exit 2
}

install_janus() {
    if command -v janus >/dev/null && command -v gcc >/dev/null \
        && [ -e "$janus_lib/plugins/libjanus_videoroom.so" ]; then
        echo "janus already installed: $(janus --version 2>/dev/null | head -1)"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends janus gcc libc6-dev
    # Debian's package enables a system service; the benchmark starts its own instances.
    if command -v systemctl >/dev/null && systemctl is-active --quiet janus 2>/dev/null; then
        systemctl stop janus || true
    fi
}

render() {
    local template="$1" out="$2" workdir="$3" port="$4" event_loops="$5"
    sed -e "s|@WORKDIR@|$workdir|g" \
        -e "s|@HTTP_PORT@|$port|g" \
        -e "s|@DEBUG_LEVEL@|${JANUS_DEBUG_LEVEL:-3}|g" \
        -e "s|@EVENT_LOOPS@|$event_loops|g" \
        "$template" >"$out"
}

# Links only the named modules into a private folder, so Janus loads nothing else.
link_modules() {
    local folder="$1"
    shift
    rm -rf "$folder"
    mkdir -p "$folder"
    for module in "$@"; do
        ln -s "$janus_lib/$module" "$folder/"
    done
}

start_janus() {
    [ $# -eq 3 ] || usage
    local config="$1" port="$2" workdir="$3"
    local event_loops
    case "$config" in
    default) event_loops="	# event_loops unset: Janus's default, a loop thread per handle." ;;
    event-loops-1) event_loops="	event_loops = 1" ;;
    *) echo "janus.sh: unknown configuration '$config' (default|event-loops-1)" >&2; exit 2 ;;
    esac
    [[ "$port" =~ ^[0-9]+$ ]] || { echo "janus.sh: bad port '$port'" >&2; exit 2; }
    command -v janus >/dev/null || { echo "janus.sh: janus is not installed (run: $0 install)" >&2; exit 1; }

    mkdir -p "$workdir"
    workdir="$(cd "$workdir" && pwd)"
    if [ -f "$workdir/janus.pid" ] && kill -0 "$(cat "$workdir/janus.pid")" 2>/dev/null; then
        echo "janus.sh: a Janus is already running from $workdir (pid $(cat "$workdir/janus.pid"))" >&2
        exit 1
    fi
    mkdir -p "$workdir/conf"
    render "$here/janus.jcfg.in" "$workdir/conf/janus.jcfg" "$workdir" "$port" "$event_loops"
    render "$here/janus.transport.http.jcfg.in" "$workdir/conf/janus.transport.http.jcfg" "$workdir" "$port" ""
    render "$here/janus.plugin.videoroom.jcfg.in" "$workdir/conf/janus.plugin.videoroom.jcfg" "$workdir" "$port" ""
    link_modules "$workdir/plugins" plugins/libjanus_videoroom.so
    link_modules "$workdir/transports" transports/libjanus_http.so
    link_modules "$workdir/events"
    link_modules "$workdir/loggers"

    local shim="$workdir/libloopback_ifaddrs.so"
    gcc -shared -fPIC -O2 -Wall -Wextra -o "$shim" "$here/loopback_ifaddrs.c" -ldl

    # setsid: Janus gets its own process group, so stopping it never touches the caller's.
    (
        # Raising the hard limit needs CAP_SYS_RESOURCE; without it Janus gets the hard limit.
        nofile="${JANUS_NOFILE:-1048576}"
        ulimit -Hn "$nofile" 2>/dev/null || true
        hard="$(ulimit -Hn)"
        if [ "$hard" != unlimited ] && [ "$nofile" -gt "$hard" ]; then nofile="$hard"; fi
        ulimit -n "$nofile"
        echo "janus.sh: open-file limit $nofile" >"$workdir/janus.log"
        pin=()
        if [ -n "${JANUS_CPUS:-}" ]; then pin=(taskset -c "$JANUS_CPUS"); fi
        exec setsid "${pin[@]}" env LD_PRELOAD="$shim" janus \
            --configs-folder="$workdir/conf" --config="$workdir/conf/janus.jcfg" \
            --disable-colors --debug-timestamps >>"$workdir/janus.log" 2>&1 </dev/null
    ) &
    local pid=$!
    echo "$pid" >"$workdir/janus.pid"

    # Ready when the HTTP API answers (bounded: 20 s).
    for _ in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "janus.sh: Janus exited during start; last lines of $workdir/janus.log:" >&2
            tail -20 "$workdir/janus.log" >&2
            rm -f "$workdir/janus.pid"
            exit 1
        fi
        if curl -fsS -m 1 "http://127.0.0.1:$port/janus/info" >/dev/null 2>&1; then
            echo "$pid"
            return
        fi
        sleep 0.1
    done
    echo "janus.sh: Janus (pid $pid) did not answer on 127.0.0.1:$port within 20 s; see $workdir/janus.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
}

stop_janus() {
    [ $# -eq 1 ] || usage
    local pid
    if [[ "$1" =~ ^[0-9]+$ ]]; then
        pid="$1"
    elif [ -f "$1/janus.pid" ]; then
        pid="$(cat "$1/janus.pid")"
    else
        echo "janus.sh: no janus.pid in $1" >&2
        exit 1
    fi
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # Bounded wait (10 s), then force.
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    [ -d "$1" ] && rm -f "$1/janus.pid"
    return 0
}

case "${1:-}" in
install) install_janus ;;
start) shift; start_janus "$@" ;;
stop) shift; stop_janus "$@" ;;
*) usage ;;
esac
