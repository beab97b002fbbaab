#!/usr/bin/env bash
# fuzz/run must tell the truth: it runs a scratch copy of the script against
# fake fuzzers (shell scripts printing what libFuzzer prints) and checks that a
# non-zero exit, zero executed units, zero or missing coverage and a missing
# binary each fail the run, that a good run passes and prints executions and
# coverage, and that SECONDS=0 means one pass (-runs=0), never libFuzzer's
# -max_total_time=0 ("no limit").
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/fuzz/corpus/frame" "$tmp/bin"
cp "$here/fuzz/run" "$tmp/fuzz/run"
printf 'seed' >"$tmp/fuzz/corpus/frame/seed"

# fake MODE: writes its arguments to $tmp/args, prints libFuzzer-like output.
fake() {
  cat >"$tmp/bin/fuzz_frame" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$@" >"$tmp/args"
echo "INFO: seed corpus: files: 1 min: 4b max: 4b total: 4b rss: 30Mb"
case $1 in
  ok)       echo "#2	DONE   cov: 57 ft: 80 corp: 1/4b lim: 4 exec/s: 0 rss: 31Mb"; n=2; rc=0 ;;
  crash)    echo "==123==ERROR: AddressSanitizer: heap-buffer-overflow"; n=1; rc=1 ;;
  noexec)   echo "#0	DONE   cov: 57 ft: 80 corp: 0/0b exec/s: 0 rss: 31Mb"; n=0; rc=0 ;;
  nocov)    echo "#2	DONE   cov: 0 ft: 0 corp: 1/4b exec/s: 0 rss: 31Mb"; n=2; rc=0 ;;
  nodone)   n=2; rc=0 ;;
  nostats)  echo "#2	DONE   cov: 57 ft: 80 corp: 1/4b exec/s: 0 rss: 31Mb"; exit 0 ;;
esac
echo "Done \$n runs in 0 second(s)"
echo "stat::number_of_executed_units: \$n"
echo "stat::peak_rss_mb:              31"
exit \$rc
EOF
  chmod +x "$tmp/bin/fuzz_frame"
}

fails=0
# expect STATUS(pass|fail) SECONDS PATTERN: runs fuzz/run, checks status and that output matches.
expect() {
  local want=$1 secs=$2 pattern=$3 rc=0
  FUZZ_BIN_DIR="$tmp/bin" FUZZ_TARGETS=frame "$tmp/fuzz/run" "$secs" >"$tmp/out" 2>&1 || rc=$?
  local got=pass
  [ "$rc" -ne 0 ] && got=fail
  if [ "$got" != "$want" ] || ! grep -qE -- "$pattern" "$tmp/out"; then
    echo "FAIL: $case_name: wanted $want matching /$pattern/, got $got (rc $rc):" >&2
    sed 's/^/  | /' "$tmp/out" >&2
    fails=$((fails + 1))
  else
    echo "ok: $case_name ($got: $(grep -E -m1 -- "$pattern" "$tmp/out"))"
  fi
}

case_name="good run"; fake ok
expect pass 5 '^fuzz_frame: 2 executions, cov 57$'
grep -qx -- '-max_total_time=5' "$tmp/args" || { echo "FAIL: 5 s did not pass -max_total_time=5" >&2; fails=$((fails + 1)); }

case_name="0 seconds = one pass"; fake ok
expect pass 0 'one pass over the corpus'
if grep -q -- '-max_total_time' "$tmp/args" || ! grep -qx -- '-runs=0' "$tmp/args"; then
  echo "FAIL: 0 s must pass -runs=0 and no -max_total_time; got: $(tr '\n' ' ' <"$tmp/args")" >&2
  fails=$((fails + 1))
fi

case_name="crash (exit 1)"; fake crash
expect fail 5 'FAILED: exit status 1'
case_name="zero executed units"; fake noexec
expect fail 5 'FAILED: executed no input'
case_name="zero coverage"; fake nocov
expect fail 5 'FAILED: reached no coverage'
case_name="no DONE line"; fake nodone
expect fail 5 'FAILED: reached no coverage \(no DONE line\)'
case_name="no final stats"; fake nostats
expect fail 5 'FAILED: executed no input \(no stats\)'
case_name="binary missing"; rm -f "$tmp/bin/fuzz_frame"
expect fail 5 'FAILED: exit status 127'
case_name="bad SECONDS"; fake ok
expect fail abc 'must be a whole number'

if [ "$fails" -ne 0 ]; then
  echo "fuzz_run_test: $fails failure(s)" >&2
  exit 1
fi
echo "fuzz_run_test: all cases passed"
