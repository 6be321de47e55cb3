# shellcheck shell=bash
# Installing what a command needs, sourced by ./dev: PostgreSQL, Redis and RabbitMQ always, and
# the EXTRA_TOOLS and EXTRA_FILES a command adds, as Debian packages through apt-get, with the
# packages' own services kept from starting.

POLICY_RC_D=/usr/sbin/policy-rc.d
APT_PACKAGES_WANTED=()
SUDO=()
is_root || SUDO=(sudo)

# The bin dir of the installed PostgreSQL: the data dir's own major version, else the newest.
pg_bindir() {
  local d best="" v
  # An existing cluster can only be run by its own major version.
  if [[ -n ${PG_DATA:-} && -r $PG_DATA/PG_VERSION ]]; then
    v="$(<"$PG_DATA/PG_VERSION")"
    d="/usr/lib/postgresql/$v/bin"
    [[ -x $d/pg_ctl ]] && { printf '%s\n' "$d"; return 0; }
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/pg_ctl && -x $d/initdb ]] || continue
    best="$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n1)"
  done
  [[ -n $best ]] && printf '%s\n' "$best"
}

# Erlang's port mapper, which Debian's erlang packages keep off the PATH.
epmd_bin() {
  local e
  if e="$(command -v epmd)"; then printf '%s\n' "$e"; return 0; fi
  for e in /usr/lib/erlang/erts-*/bin/epmd /usr/lib/erlang/bin/epmd; do
    [[ -x $e ]] && { printf '%s\n' "$e"; return 0; }
  done
  return 1
}

# Extra tools a command needs, as command:package (./dev test wants wrk, ./dev bench more).
EXTRA_TOOLS=()
# Files a command needs that no command reveals (an extension), as path:package.
EXTRA_FILES=()

missing_packages() {
  APT_PACKAGES_WANTED=()
  local tool
  for tool in "${EXTRA_TOOLS[@]}"; do
    command -v "${tool%%:*}" >/dev/null || APT_PACKAGES_WANTED+=("${tool#*:}")
  done
  for tool in "${EXTRA_FILES[@]}"; do
    [[ -e ${tool%%:*} ]] || APT_PACKAGES_WANTED+=("${tool#*:}")
  done
  pg_bindir >/dev/null || APT_PACKAGES_WANTED+=(postgresql)
  if ((WANT_REPLICATION)); then
    command -v pg_autoctl >/dev/null || APT_PACKAGES_WANTED+=(pg-auto-failover-cli)
    local major
    major="$(basename "$(dirname "$(pg_bindir || echo /15/bin)")")"
    [[ -e /usr/share/postgresql/$major/extension/pgautofailover.control ]] ||
      APT_PACKAGES_WANTED+=("postgresql-$major-auto-failover")
  fi
  command -v redis-server >/dev/null || APT_PACKAGES_WANTED+=(redis-server)
  command -v redis-cli >/dev/null || APT_PACKAGES_WANTED+=(redis-tools)
  [[ -x $RMQ_SBIN/rabbitmq-server ]] && epmd_bin >/dev/null || APT_PACKAGES_WANTED+=(rabbitmq-server)
  ((${#APT_PACKAGES_WANTED[@]} > 0))
}

# Package postinst scripts would start the system-wide services; a
# policy-rc.d that exits 101 forbids that. An existing one is not ours to touch.
POLICY_RC_D_OURS=0
policy_rc_d_block() {
  [[ -e $POLICY_RC_D ]] && return 0
  printf '#!/bin/sh\n# temporary, from agora ./dev: keep apt from starting services\nexit 101\n' |
    "${SUDO[@]}" tee "$POLICY_RC_D" >/dev/null
  "${SUDO[@]}" chmod 0755 "$POLICY_RC_D"
  POLICY_RC_D_OURS=1
  on_exit policy_rc_d_release
}
policy_rc_d_release() {
  ((POLICY_RC_D_OURS)) || return 0
  "${SUDO[@]}" rm -f "$POLICY_RC_D"
  POLICY_RC_D_OURS=0
}

ensure_packages() {
  missing_packages || return 0
  command -v apt-get >/dev/null || die "missing ${APT_PACKAGES_WANTED[*]} and no apt-get to install them"
  note "installing ${APT_PACKAGES_WANTED[*]} (apt-get; services will not be started)"
  policy_rc_d_block
  local log="$LOGS/apt.log"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=600 >>"$log" 2>&1 || {
    log_tail "$log"
    die "apt-get update failed (log: $log)"
  }
  # Another apt-get (ours from a parallel ./dev, or the machine's own updates) holds the dpkg
  # lock for a while: wait for it rather than fail.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600 "${APT_PACKAGES_WANTED[@]}" >>"$log" 2>&1 || {
    log_tail "$log"
    die "apt-get install ${APT_PACKAGES_WANTED[*]} failed (log: $log)"
  }
  policy_rc_d_release
  ! missing_packages || die "still missing after install: ${APT_PACKAGES_WANTED[*]}"
}
