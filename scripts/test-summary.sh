#!/usr/bin/env bash
# The end of `make test`: each stage's wall time, and the tests run, counted from the
# stage logs (cargo test's "test result:" lines, node --test's "# pass" / "# fail").
set -uo pipefail
dir=target/test-stages
echo
echo "stage            seconds"
while read -r name secs status; do
  printf '%-16s %7d%s\n' "$name" "$secs" "$([ "$status" = 0 ] || echo "  (failed)")"
done < "$dir/times"
# Wall time from the start of make test (infra-tests ran beside rust-tests).
total=$(( $(date +%s) - $(cat "$dir/start" 2>/dev/null || date +%s) ))
printf '%-16s %7d  (%dm %02ds, wall)\n' total "$total" $((total / 60)) $((total % 60))
passed=0; failed=0; ignored=0
for log in "$dir"/*.log; do
  while read -r p f i; do
    passed=$((passed + p)); failed=$((failed + f)); ignored=$((ignored + i))
  done < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$log")
  passed=$((passed + $(awk '/^# pass [0-9]+$/ {s += $3} END {print s + 0}' "$log")))
  failed=$((failed + $(awk '/^# fail [0-9]+$/ {s += $3} END {print s + 0}' "$log")))
done
echo
echo "tests: $passed passed, $failed failed, $ignored skipped"
# A failure any stage let through still fails make test.
[ "$failed" = 0 ]
