# shellcheck shell=bash
# The helpers every ./dev command uses, sourced by ./dev: messages, the exit cleanups, daemons
# (spawn, live_pid, stop_pid), ports, waiting, the stack lock, status lines and cargo's target
# dir. Nothing here knows a particular server.

note() { printf '%s\n' "$*"; }
warn() { printf 'dev: %s\n' "$*" >&2; }
die() { printf 'dev: error: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $EUID -eq 0 ]]; }

# One EXIT trap runs every registered cleanup (last registered first), so
# installing packages, `./dev up` and `./dev test` can each add their own.
CLEANUPS=()
on_exit() { CLEANUPS+=("$1"); }
run_cleanups() {
  local i
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[i]}" || true; done
  CLEANUPS=()
}
trap run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A TCP connect is the cheapest readiness probe that needs no client binary.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# kill -0 also succeeds for zombies, and on machines whose init does not reap
# orphans a dead daemon stays a zombie: so look at the state too.
pid_alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# Pid from a pid file, only if that process is alive AND still the program we
# started (pids get recycled; we must never signal a stranger).
live_pid() { # pidfile comm-prefix
  local pidfile=$1 comm=$2 pid name
  [[ -r $pidfile ]] || return 1
  # RabbitMQ writes its pid file without a trailing newline, so no `read`.
  pid="$(head -n1 "$pidfile")"
  [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
  name="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
  [[ $name == "$comm"* ]] || return 1
  printf '%s\n' "$pid"
}

# Start a daemon in its own session (so Ctrl-C in our terminal does not hit
# it; we stop things in order ourselves) and record its pid.
spawn() { # pidfile logfile comm cmd...
  local pidfile=$1 logfile=$2 comm=$3 pid i
  shift 3
  # 9>&-: daemons must not inherit (and so hold forever) the stack lock.
  setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$pidfile"
  # Until env/setsid have exec'd the real program, the pid has another name
  # and live_pid would call it dead.
  for ((i = 0; i < 50; i++)); do
    live_pid "$pidfile" "$comm" >/dev/null && return 0
    pid_alive "$pid" || break
    sleep 0.1
  done
  log_tail "$logfile"
  die "$comm did not start (log: $logfile)"
}

stop_pid() { # label pidfile comm [timeout-seconds]
  local label=$1 pidfile=$2 comm=$3 timeout=${4:-20} pid i
  if ! pid="$(live_pid "$pidfile" "$comm")"; then
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    pid_alive "$pid" || break
    sleep 0.1
  done
  if pid_alive "$pid"; then
    warn "$label (pid $pid) ignored SIGTERM for ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
  note "$label stopped (pid $pid)"
}

wait_until() { # seconds command...
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 4; i++)); do
    "$@" && return 0
    sleep 0.25
  done
  return 1
}

log_tail() {
  if [[ -f $1 ]]; then tail -n "${2:-20}" "$1" | sed 's/^/    /' >&2; fi
}

# New dirs get 0755 whatever the umask: `postgres` may need to traverse them.
mkdir_755() {
  local d
  for d; do [[ -d $d ]] || { mkdir -p "$d" && chmod 0755 "$d"; }; done
}

# One ./dev at a time per stack dir; daemons are spawned with fd 9 closed, so they never hold it.
with_lock() {
  mkdir -p "$STACK"
  exec 9>"$STACK/.lock"
  flock -w 120 9 || die "another ./dev is working on $STACK"
}
unlock() { exec 9>&-; }

# A line of `./dev status` (and of the families' status commands).
status_line() { # name pid port
  if [[ -n $2 ]]; then
    printf '  %-9s running  pid %-7s 127.0.0.1:%s\n' "$1" "$2" "$3"
  else
    local extra=""
    port_open "$3" && extra="  (port $3 busy: not ours)"
    printf '  %-9s stopped%s\n' "$1" "$extra"
  fi
}

# Where cargo puts what it builds.
target_dir() {
  local t=${CARGO_TARGET_DIR:-$ROOT/target}
  [[ $t == /* ]] || t="$ROOT/$t" # cargo resolves it against its cwd, which is $ROOT
  printf '%s\n' "$t"
}
