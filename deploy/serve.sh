#!/usr/bin/env bash
# deploy/serve.sh PORT REPLICAS: the app for a class on one machine (docs/hosting.md).
#
# Starts REPLICAS `streamlit run app.py` servers (the repo's .streamlit/config.toml, headless, each
# on its own loopback port) and HAProxy on SERVE_ADDRESS:PORT in front of them: sticky sessions by
# cookie (page, websocket, uploads and reconnects of one browser reach one replica), health checks
# on /_stcore/health, websockets with long tunnel timeouts, an access log naming the replica of each
# request, a status page (/haproxy-status) and a health answer (/haproxy-health).
# It prints "Serving on http://ADDRESS:PORT (N replicas)" once every replica is healthy and the proxy
# answers. Ctrl-C or SIGTERM stops everything it started and exits 0; SIGHUP restarts the replicas
# one at a time while the proxy keeps serving.
#
# Optional environment (everything else, CKA_* caps included, passes through to the replicas):
#   SERVE_ADDRESS        address the proxy listens on (default 127.0.0.1; 0.0.0.0 to serve a room)
#   SERVE_RUN_DIR        directory for the config, logs and pid files, kept at exit
#                        (default: a new temporary directory, removed at exit)
#   SERVE_PIN_CPUS=1     pin replica k to the k-th allowed CPU, round-robin (taskset)
#   SERVE_START_TIMEOUT  seconds the replicas and the proxy have to become healthy (default 120)
#   SERVE_DRAIN_SECONDS  on SIGHUP, seconds a replica takes no new sessions before it stops (default 5)
#   SERVE_WARM_SECONDS   before the URL is printed (and before a restarted replica takes sessions
#                        again), each replica computes every page's defaults and the choices a class
#                        makes, for at most this long (default 300; 0 skips it)
#   PYTHON               the Python that has streamlit (default: python3 on PATH, else .venv/bin/python)
set -uo pipefail

readonly USAGE="usage: deploy/serve.sh PORT REPLICAS"
fail() { echo "serve.sh: error: $*" >&2; exit 2; }
say() { echo "serve.sh: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CTL="$ROOT/deploy/proxyctl.py"

# ---- arguments and prerequisites (nothing is started before they all pass) --------------------------
[[ $# -eq 2 ]] || fail "expected 2 arguments, got $# ($USAGE)"
PORT=$1 N=$2
if ! [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
  fail "PORT must be a number from 1 to 65535, got '$PORT' ($USAGE)"
fi
if ! [[ $N =~ ^[1-9][0-9]{0,2}$ ]] || ((10#$N < 1 || 10#$N > 64)); then
  fail "REPLICAS must be a number from 1 to 64, got '$N' ($USAGE)"
fi
PORT=$((10#$PORT)) N=$((10#$N))
ADDRESS=${SERVE_ADDRESS:-127.0.0.1}
START_TIMEOUT=${SERVE_START_TIMEOUT:-120}
DRAIN_SECONDS=${SERVE_DRAIN_SECONDS:-5}
WARM_SECONDS=${SERVE_WARM_SECONDS:-600}
[[ $WARM_SECONDS =~ ^[0-9]+$ ]] || fail "SERVE_WARM_SECONDS must be a whole number of seconds, got '$WARM_SECONDS'"
[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || fail "SERVE_START_TIMEOUT must be a whole number of seconds, got '$START_TIMEOUT'"
[[ $DRAIN_SECONDS =~ ^[0-9]+$ ]] || fail "SERVE_DRAIN_SECONDS must be a whole number of seconds, got '$DRAIN_SECONDS'"

command -v haproxy >/dev/null || fail "haproxy is not installed: apt-get install -y haproxy"
if [[ $(haproxy -v 2>&1 | head -n1) =~ version\ ([0-9]+)\.([0-9]+) ]]; then
  ((BASH_REMATCH[1] > 2 || (BASH_REMATCH[1] == 2 && BASH_REMATCH[2] >= 2))) \
    || fail "haproxy ${BASH_REMATCH[1]}.${BASH_REMATCH[2]} is too old (2.2 or newer is needed)"
else
  fail "cannot read the version of $(command -v haproxy)"
fi

PY=
if [[ -n ${PYTHON:-} ]]; then candidates=("$PYTHON"); else candidates=(python3 "$ROOT/.venv/bin/python"); fi
for candidate in "${candidates[@]}"; do
  if command -v "$candidate" >/dev/null \
     && "$candidate" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("streamlit") is None)' 2>/dev/null; then
    PY=$(command -v "$candidate")
    break
  fi
done
[[ -n $PY ]] || fail "no Python with streamlit found: activate the venv (. .venv/bin/activate) or set PYTHON"
if [[ $ADDRESS == "0.0.0.0" || $ADDRESS == "::" ]]; then PROBE_HOST=127.0.0.1; else PROBE_HOST=$ADDRESS; fi
"$PY" "$CTL" port-free "$ADDRESS" "$PORT" || fail "cannot listen on $ADDRESS:$PORT (in use, or not permitted)"

# ---- state, clean-up ---------------------------------------------------------------------------
if [[ -n ${SERVE_RUN_DIR:-} ]]; then
  RUN=$SERVE_RUN_DIR KEEP_RUN=1
  mkdir -p "$RUN" || fail "cannot create SERVE_RUN_DIR $RUN"
  RUN=$(cd "$RUN" && pwd)
else
  RUN=$(mktemp -d "${TMPDIR:-/tmp}/cka-serve.XXXXXX") KEEP_RUN=0
fi
declare -a PORTS=() PIDS=() REPORTED=()
HAPROXY_PID='' STOP=0 RESTART=0 CLEANED=0 NAP_PID=''

# Sleep, but wake up at once on a signal (bash runs a trap only between commands).
nap() { sleep "$1" & NAP_PID=$!; wait "$NAP_PID" 2>/dev/null; kill "$NAP_PID" 2>/dev/null; NAP_PID=; }

# Stop process groups (each replica and the proxy runs in its own, so helpers they start go too):
# SIGTERM, up to $1 seconds to exit, then SIGKILL.
stop_groups() {
  local grace=$1 pid deadline; shift
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null; done
  deadline=$((SECONDS + grace))
  for pid in "$@"; do
    while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null
  done
  for pid in "$@"; do wait "$pid" 2>/dev/null; done
}

# shellcheck disable=SC2329  # run by the EXIT trap
cleanup() {
  ((CLEANED)) && return
  CLEANED=1
  trap '' INT TERM HUP
  [[ -n $NAP_PID ]] && kill "$NAP_PID" 2>/dev/null
  local groups=()
  [[ -n $HAPROXY_PID ]] && groups+=("$HAPROXY_PID")
  groups+=("${PIDS[@]}")
  ((${#groups[@]})) && stop_groups 10 "${groups[@]}"
  if ((KEEP_RUN)); then rm -f "$RUN/haproxy.sock"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'STOP=1' INT TERM
trap 'RESTART=1' HUP

# One HTTP GET over bash's /dev/tcp: true when the answer is 200.
probe() {  # HOST PORT PATH
  local fd line
  exec {fd}<>"/dev/tcp/$1/$2" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$3" "$1" "$2" >&"$fd"
  IFS= read -r -t 5 line <&"$fd"
  exec {fd}>&-
  [[ $line =~ ^HTTP/1\.[01]\ 200 ]]
} 2>/dev/null

alive() { kill -0 "$1" 2>/dev/null; }
admin() { "$PY" "$CTL" admin "$RUN/haproxy.sock" "$1" >/dev/null; }
server_state() { "$PY" "$CTL" state "$RUN/haproxy.sock" "r$1"; }
log_tail() { say "last lines of $1:"; tail -n 20 "$1" | sed 's/^/    /' >&2; }

# ---- replicas ------------------------------------------------------------------------------------
mapfile -t PORT_LIST < <("$PY" "$CTL" free-ports "$N")
for ((i = 1; i <= N; i++)); do PORTS[i]=${PORT_LIST[i-1]}; done
mapfile -t CPU_LIST < <("$PY" "$CTL" cpus)
PIN=
if [[ ${SERVE_PIN_CPUS:-0} == 1 ]]; then
  command -v taskset >/dev/null || fail "SERVE_PIN_CPUS=1 needs taskset: apt-get install -y util-linux"
  PIN=1
fi
# The replicas share one cookie secret, so a cookie Streamlit signs is valid on every replica.
SECRET=${STREAMLIT_SERVER_COOKIE_SECRET:-$("$PY" "$CTL" secret)}
# Each replica has its own worker pool (training, resampling, scorecards): split the host's (cores - 1)
# between replicas.
WORKERS=${CKA_WORKERS:-$(((${#CPU_LIST[@]} - 1) / N > 1 ? (${#CPU_LIST[@]} - 1) / N : 1))}

start_replica() {  # K
  local k=$1 log="$RUN/replica-r$1.log" cmd=(setsid)
  [[ -n $PIN ]] && cmd+=(taskset -c "${CPU_LIST[(k - 1) % ${#CPU_LIST[@]}]}")
  cmd+=("$PY" -m streamlit run app.py --server.port "${PORTS[k]}" --server.address 127.0.0.1
        --server.headless true)
  echo "---- $(date '+%F %T') serve.sh starts r$k on 127.0.0.1:${PORTS[k]}" >>"$log"
  # setsid: its own process group, which stop_groups ends as a whole. From a non-interactive
  # shell setsid does not fork, so $! is the server's pid and its group id.
  # MALLOC_ARENA_MAX: glibc gives each of a server's many script threads an arena of its own, and
  # the freed memory scattered over them stays resident; two arenas hold the same work in less.
  (cd "$ROOT" && STREAMLIT_SERVER_COOKIE_SECRET=$SECRET CKA_WORKERS=$WORKERS MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} \
     exec "${cmd[@]}") \
    </dev/null >>"$log" 2>&1 &
  PIDS[k]=$!
  REPORTED[k]=0
  echo "${PIDS[k]}" >"$RUN/replica-r$k.pid"
}

wait_healthy() {  # K...: true once each replica answers /_stcore/health, false on exit, signal or time-out
  local k deadline=$((SECONDS + START_TIMEOUT)) pending=("$@") left
  while ((${#pending[@]})); do
    left=()
    for k in "${pending[@]}"; do
      if ! alive "${PIDS[k]}"; then say "replica r$k exited while starting"; log_tail "$RUN/replica-r$k.log"; return 1; fi
      probe 127.0.0.1 "${PORTS[k]}" /_stcore/health || left+=("$k")
    done
    pending=("${left[@]}")
    ((${#pending[@]})) || return 0
    ((STOP)) && return 1
    if ((SECONDS >= deadline)); then
      say "replica r${pending[0]} not healthy after ${START_TIMEOUT}s"; log_tail "$RUN/replica-r${pending[0]}.log"; return 1
    fi
    nap 0.5
  done
}

echo $$ >"$RUN/serve.pid"
for ((i = 1; i <= N; i++)); do start_replica "$i"; done
if ! wait_healthy $(seq 1 "$N"); then ((STOP)) && exit 0; exit 1; fi

# ---- proxy ---------------------------------------------------------------------------------------
# HAProxy needs about 2 file descriptors per connection and refuses to start when the hard limit is
# lower than maxconn asks for (a non-root user's is often 1024): size maxconn to the limit.
FD_LIMIT=$(ulimit -Hn)
[[ $FD_LIMIT =~ ^[0-9]+$ ]] || FD_LIMIT=1048576
MAXCONN=$(((FD_LIMIT - 200) / 2))
((MAXCONN > 4096)) && MAXCONN=4096
((MAXCONN < 100)) && fail "the open-files limit ($FD_LIMIT) is too low for the proxy: raise ulimit -n"
{
  cat <<EOF
# Written by deploy/serve.sh for this run; see docs/hosting.md.
global
    # No syslog here: the access log goes to HAProxy's stdout, which serve.sh sends to access.log.
    log stdout format raw local0 info
    maxconn $MAXCONN
    stats socket $RUN/haproxy.sock mode 600 level admin
    hard-stop-after 10s

defaults
    mode http
    log global
    option httplog                # one line per request, with backend/server: streamlit/r1
    option dontlognull
    option forwardfor
    option redispatch             # a replica that refuses a connection: retry on another one
    retries 2
    # A replica killed mid-connection can also reset or close it without an answer: retry those too
    # (HAProxy replays only requests it still holds in full).
    retry-on conn-failure empty-response junk-response response-timeout
    timeout connect 3s
    timeout client 60s            # idle limits for plain HTTP (an upload is not idle)
    timeout server 60s
    timeout http-request 15s
    timeout http-keep-alive 15s
    timeout queue 30s
    timeout tunnel 1h             # websockets (/_stcore/stream) once upgraded; Streamlit pings every 30 s
    timeout client-fin 10s
    timeout server-fin 10s
    timeout check 5s

frontend cka
    bind $ADDRESS:$PORT
    http-request return status 200 content-type text/plain lf-string "ok: %[nbsrv(streamlit)] of $N replicas up\n" if { path /haproxy-health } { nbsrv(streamlit) gt 0 }
    http-request return status 503 content-type text/plain string "no replica up\n" if { path /haproxy-health }
    use_backend status if { path_beg /haproxy-status }
    default_backend streamlit

backend status
    http-request deny unless { src 127.0.0.0/8 ::1 }
    stats enable
    stats uri /haproxy-status
    stats refresh 5s
    stats show-legends
    stats hide-version

backend streamlit
    # A session lives in one replica's memory: its page load, websocket, uploads and reconnects
    # must all reach it. HAProxy sets SERVERID=<replica> on a browser's first answer and sends
    # every request carrying it to that replica while it is up (another one once it is down).
    balance leastconn             # new browsers go to the replica with the fewest open websockets
    cookie SERVERID insert indirect nocache httponly attr "SameSite=Lax"
    option httpchk
    http-check send meth GET uri /_stcore/health
    http-check expect status 200
    default-server check inter 2s fall 3 rise 2
    http-response set-header X-Replica %s
EOF
  for ((i = 1; i <= N; i++)); do
    echo "    server r$i 127.0.0.1:${PORTS[i]} cookie r$i"
  done
} >"$RUN/haproxy.cfg"

haproxy -c -q -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 || { log_tail "$RUN/haproxy.log"; fail "invalid HAProxy configuration $RUN/haproxy.cfg"; }
# -db: stay in the foreground, so "log stdout" works and this script supervises the process.
setsid haproxy -db -f "$RUN/haproxy.cfg" </dev/null >>"$RUN/access.log" 2>>"$RUN/haproxy.log" &
HAPROXY_PID=$!
echo "$HAPROXY_PID" >"$RUN/haproxy.pid"
deadline=$((SECONDS + 30))
until probe "$PROBE_HOST" "$PORT" /haproxy-health && probe "$PROBE_HOST" "$PORT" /_stcore/health; do
  alive "$HAPROXY_PID" || { log_tail "$RUN/haproxy.log"; say "error: haproxy exited"; exit 1; }
  ((STOP)) && exit 0
  ((SECONDS < deadline)) || { log_tail "$RUN/haproxy.log"; say "error: the proxy does not answer on $ADDRESS:$PORT"; exit 1; }
  nap 0.2
done
# HAProxy spreads its first checks over one interval; until then a server reads "UP 1/3".
for ((i = 1; i <= N; i++)); do
  until [[ $(server_state "$i") == UP ]]; do
    alive "$HAPROXY_PID" || { log_tail "$RUN/haproxy.log"; say "error: haproxy exited"; exit 1; }
    ((STOP)) && exit 0
    ((SECONDS < deadline)) || { say "error: the proxy's health checks do not pass for r$i"; exit 1; }
    nap 0.2
  done
done

warm_replicas() {  # K...: warm each replica on its own port (its caches are its own), all at once
  ((WARM_SECONDS > 0)) || return 0
  local k warmers=()
  say "warming r$* for at most ${WARM_SECONDS}s (the pages' defaults and a class's choices; SERVE_WARM_SECONDS)"
  for k in "$@"; do
    (cd "$ROOT" && exec "$PY" -m benchmarks.ws_load.warm "http://127.0.0.1:${PORTS[k]}" --seconds "$WARM_SECONDS") \
      </dev/null >"$RUN/warm-r$k.log" 2>&1 &
    warmers+=($!)
  done
  for k in "${warmers[@]}"; do
    while alive "$k"; do ((STOP)) && { kill "$k" 2>/dev/null; return 0; }; nap 0.5; done
  done
  for k in "$@"; do say "$(tail -n 1 "$RUN/warm-r$k.log")"; done
}
warm_replicas $(seq 1 "$N")
((STOP)) && exit 0

for ((i = 1; i <= N; i++)); do
  say "replica r$i: 127.0.0.1:${PORTS[i]}, pid ${PIDS[i]}, log $RUN/replica-r$i.log"
done
say "access log $RUN/access.log; status http://$PROBE_HOST:$PORT/haproxy-status; kill -HUP $$ restarts the replicas one by one"
echo "Serving on http://$PROBE_HOST:$PORT ($N replica$( ((N > 1)) && echo s))"

# ---- supervise -------------------------------------------------------------------------------------
restart_replicas() {
  local k deadline
  say "restarting the replicas one at a time"
  for ((k = 1; k <= N; k++)); do
    ((STOP)) && return
    if alive "${PIDS[k]}"; then
      admin "set server streamlit/r$k state drain"   # no new sessions; its own users still reach it
      nap "$DRAIN_SECONDS"
    fi
    admin "set server streamlit/r$k state maint"     # from here its users are sent to another replica
    stop_groups 10 "${PIDS[k]}"
    start_replica "$k"
    if ! wait_healthy "$k"; then
      ((STOP)) || say "error: r$k did not come back; the other replicas are left as they are"
      admin "set server streamlit/r$k state ready"   # health checks decide from here
      return
    fi
    warm_replicas "$k"
    admin "set server streamlit/r$k state ready"
    deadline=$((SECONDS + 20))
    until [[ $(server_state "$k") == UP ]] || ((STOP || SECONDS >= deadline)); do nap 0.5; done
    say "replica r$k restarted: pid ${PIDS[k]}"
  done
  say "all replicas restarted"
}

while ((!STOP)); do
  nap 1
  if ((RESTART)); then RESTART=0; restart_replicas; fi
  alive "$HAPROXY_PID" || { log_tail "$RUN/haproxy.log"; say "error: haproxy exited"; exit 1; }
  for ((i = 1; i <= N; i++)); do
    if ((!REPORTED[i])) && ! alive "${PIDS[i]}"; then
      REPORTED[i]=1
      say "replica r$i (pid ${PIDS[i]}) exited; the proxy sends its users elsewhere; kill -HUP $$ restarts it"
    fi
  done
done
say "stopping"
exit 0
