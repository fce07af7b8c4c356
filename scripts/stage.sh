#!/usr/bin/env bash
# stage.sh NAME COMMAND...: run one stage of `make test`, its output shown and kept in
# target/test-stages/NAME.log, its wall time appended to target/test-stages/times.
set -uo pipefail
name=$1; shift
dir=target/test-stages
mkdir -p "$dir"
echo "=== $name: $*"
start=$(date +%s)
"$@" 2>&1 | tee "$dir/$name.log"
status=${PIPESTATUS[0]}
echo "$name $(( $(date +%s) - start )) $status" >> "$dir/times"
exit "$status"
