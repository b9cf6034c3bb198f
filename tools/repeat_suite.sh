#!/usr/bin/env bash
# Run a test suite (default: the gateway's, tests/unit/gateway + tests/integration/gateway) several times in a row,
# optionally while CPU burners run, and write one line per run:
#
#   <start (UTC)> <duration s> passed=<n> failed=<n> errors=<n> exit=<code> load=<1-min load average at start>-><at end>
#
#   tools/repeat_suite.sh [-n RUNS] [-b BURNERS] [-N NICENESS] [-l LOG] [-x] [-- PYTEST_ARGS…]
#
#   -n RUNS     how many runs (default 20)
#   -b BURNERS  start this many `python3 -c 'while True: pass'` processes (normal priority) for the whole loop,
#               stopped by their pid at the end (default 0)
#   -N NICENESS the suite's niceness (default 10, the shared machine's rule for tests)
#   -l LOG      the log file (default test-artifacts/repeat_suite.log; appended to)
#   -x          stop after the first run that does not pass
#
# The suite runs under `nice -n NICENESS`, the burners are never niced. Note that a suite at niceness 10 next to
# burners at 0 on a machine that is busy anyway gets almost no CPU at all (a weight of 110 against 1024 per
# burner): -N 0 puts it on an equal footing with the burners. Each run's pytest output (with --durations=40) is kept as test-artifacts/repeat_suite/<start>.out.
set -u
cd "$(dirname "$0")/.."

runs=20 burners=0 niceness=10 log=test-artifacts/repeat_suite.log stop_on_fail=0
while getopts "n:b:N:l:x" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    b) burners=$OPTARG ;;
    N) niceness=$OPTARG ;;
    l) log=$OPTARG ;;
    x) stop_on_fail=1 ;;
    *) sed -n 2,20p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tests/unit/gateway tests/integration/gateway)
python=${PYTHON:-.venv/bin/python}
mkdir -p "$(dirname "$log")" test-artifacts/repeat_suite

burner_pids=()
stop_burners() { for pid in "${burner_pids[@]}"; do kill "$pid" 2>/dev/null; done; }
trap stop_burners EXIT
for _ in $(seq 1 "$burners"); do
  python3 -c 'while True: pass' &
  burner_pids+=($!)
done

load() { cut -d' ' -f1 /proc/loadavg; }
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) ${targets[*]} runs=$runs burners=$burners niceness=$niceness cores=$(nproc)" >>"$log"
consecutive=0
for n in $(seq 1 "$runs"); do
  start=$(date -u +%FT%TZ) t0=$(date +%s) load0=$(load)
  out=test-artifacts/repeat_suite/$start.out
  nice -n "$niceness" "$python" -m pytest -q -p no:cacheprovider --durations=40 "${targets[@]}" >"$out" 2>&1
  code=$?
  t1=$(date +%s)
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$out" | tail -1)
  count() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
  line="$start $((t1 - t0)) passed=$(count passed) failed=$(count failed) errors=$(count error) exit=$code load=$load0->$(load)"
  echo "$line" | tee -a "$log"
  if [ "$code" -eq 0 ]; then
    consecutive=$((consecutive + 1))
  else
    consecutive=0
  fi
  [ "$code" -ne 0 ] && [ "$stop_on_fail" -eq 1 ] && break
done
echo "# consecutive passes at the end: $consecutive" | tee -a "$log"
