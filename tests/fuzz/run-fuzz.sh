#!/bin/sh
# run-fuzz.sh BIN SEED_DIR SECONDS [libFuzzer flags...]
#
# Runs the libFuzzer binary BIN for SECONDS on a fresh temporary corpus seeded from the
# files of SEED_DIR (which is only read: nothing is written into the source tree). Exits 0
# when the fuzzer finishes its time without a finding, 1 when it crashes, times out, leaks or
# trips a check; the failing input is then kept under the temporary directory, whose path and
# a dump of each artifact are printed. Replay one with: BIN ARTIFACT
set -u

if [ $# -lt 3 ]; then
  echo "usage: $0 BIN SEED_DIR SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
bin=$1
seeds=$2
seconds=$3
shift 3

if [ ! -x "$bin" ]; then echo "run-fuzz.sh: $bin is not an executable" >&2; exit 2; fi
if [ ! -d "$seeds" ]; then echo "run-fuzz.sh: $seeds is not a directory" >&2; exit 2; fi
case $seconds in
  ''|*[!0-9]*) echo "run-fuzz.sh: SECONDS must be a positive integer, not '$seconds'" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$(basename "$bin").XXXXXX") || exit 2
mkdir "$work/corpus" "$work/artifacts" || exit 2
for f in "$seeds"/*; do
  [ -f "$f" ] && cp "$f" "$work/corpus/"
done
echo "run-fuzz.sh: $(ls "$work/corpus" | wc -l) seeds from $seeds, corpus in $work/corpus, ${seconds}s"

# -timeout: one input taking 25 s is a finding (a hang), not something to wait 20 min for.
"$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus"
status=$?

if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  echo "run-fuzz.sh: FAILED: $bin exited with status $status"
  for a in "$work/artifacts"/*; do
    [ -f "$a" ] || continue
    echo "run-fuzz.sh: artifact $a ($(wc -c < "$a") bytes; first byte = options, see the target's source):"
    od -A d -c "$a" | head -20
  done
  echo "run-fuzz.sh: kept $work for inspection"
  exit 1
fi
rm -rf "$work"
echo "run-fuzz.sh: no finding in ${seconds}s"
exit 0
