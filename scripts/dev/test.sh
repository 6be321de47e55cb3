# shellcheck shell=bash
# ./dev test, check and screenshots, sourced by ./dev: the test suites on the test stack, the
# tidiness checks CI runs, and the browser test that saves the UI's screenshots.

# shellcheck disable=SC2034 # EXTRA_TOOLS, EXTRA_FILES: for ensure_packages
cmd_test() { # [cargo test args]
  command -v cargo >/dev/null || die "cargo not found"
  # wrk: the load tool's accuracy test compares it with wrk; chromium and its driver: the web
  # front end's browser test (crates/agora/tests/browser.rs).
  EXTRA_TOOLS=(wrk:wrk chromium:chromium chromedriver:chromium-driver)
  EXTRA_FILES=(/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core)
  # The accuracy test must not be skipped here.
  export AGORA_REQUIRE_WRK=1
  load_profile test
  [[ ${AGORA_KEEP_STACK:-0} == 1 ]] || on_exit stack_down
  stack_up
  export_env
  cd "$ROOT" || exit
  local failed=()
  # Every test binary runs even when one fails: a first failure must not hide the others.
  cargo test --workspace --no-fail-fast "$@" || failed+=("cargo test")
  if cargo build -p agora -p agora-bench; then
    AGORA_BIN="$(target_dir)/debug/agora" "$ROOT/scripts/contract-test.sh" || failed+=("contract test")
    AGORA_BIN="$(target_dir)/debug/agora" "$ROOT/scripts/monitoring-test.sh" || failed+=("monitoring test")
    AGORA_BIN="$(target_dir)/debug/agora" AGORA_BENCH_BIN="$(target_dir)/debug/agora-bench" \
      "$ROOT/scripts/shop-fault-test.sh" || failed+=("shop fault test")
    # Last: it stops and starts the formation the cargo tests use.
    "$ROOT/scripts/replication-restart-test.sh" || failed+=("replication restart test")
  else
    failed+=("cargo build -p agora -p agora-bench")
  fi
  if ((${#failed[@]})); then
    warn "FAILED: ${failed[*]}"
    exit 1
  fi
  note "all tests passed"
}

cmd_check() {
  (($# == 0)) || usage
  # The checks that keep the tree tidy (CONTRIBUTING.md): each prints what it found.
  EXTRA_TOOLS=(shellcheck:shellcheck)
  load_profile test
  mkdir -p "$LOGS"
  ensure_packages
  cd "$ROOT" || exit
  local failed=()
  note "import cycles between modules"
  python3 scripts/checks/module-cycles.py || failed+=("module cycles")
  note "shellcheck"
  local scripts=()
  mapfile -t scripts < <(git ls-files '*.sh')
  shellcheck -x dev .ci/run "${scripts[@]}" && printf '%s scripts clean\n' "$((${#scripts[@]} + 2))" ||
    failed+=("shellcheck")
  note "what the docs name exists"
  python3 scripts/checks/docs-references.py || failed+=("docs references")
  note "dependencies: licences and duplicate versions"
  python3 scripts/checks/dependencies.py || failed+=("dependencies")
  note "unused dependencies"
  python3 scripts/checks/unused-dependencies.py || failed+=("unused dependencies")
  if ((${#failed[@]})); then
    warn "FAILED: ${failed[*]}"
    exit 1
  fi
  note "all checks passed"
}

# shellcheck disable=SC2034 # EXTRA_TOOLS, EXTRA_FILES: for ensure_packages
cmd_screenshots() {
  command -v cargo >/dev/null || die "cargo not found"
  EXTRA_TOOLS=(chromium:chromium chromedriver:chromium-driver)
  EXTRA_FILES=(/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core)
  load_profile test
  [[ ${AGORA_KEEP_STACK:-0} == 1 ]] || on_exit stack_down
  stack_up
  export_env
  cd "$ROOT" || exit
  AGORA_SCREENSHOTS="$ROOT/docs/ui" cargo test -p agora --test browser || die "the browser test failed"
  note "screenshots in docs/ui/"
}
