#!/usr/bin/env bash
# Validation benchmark: is `fetchflow validate` fast enough for a pre-commit hook and for CI?
#
#   benches/validate.sh              build release, generate 1,000 workflows, measure, check targets
#   benches/validate.sh --no-check   only report; never fail on a missed target
#
# Options: --files N (default 1000), --runs N (default 20), --keep (keep the generated directory).
# Targets (DESIGN 9, "fast enough for a pre-commit hook"):
#   (i)  fetchflow validate <dir of 1,000 files, ~60 lines each>   mean <= 1000 ms
#   (ii) fetchflow validate <one file>                              mean <= 20 ms (process wall time)
# FETCHFLOW_BIN=PATH measures another binary and skips the build (for testing this script).
# Uses hyperfine when installed (apt-get install -y hyperfine), otherwise a bash loop with date +%s%N
# (which adds about a millisecond of `date` start-up to every sample).
# Exit: 0 all targets met (or --no-check), 1 a target missed, 2 usage or setup error.
set -euo pipefail

check=1 files=1000 runs=20 keep=0
while (($#)); do
  case "$1" in
    --no-check) check=0 ;;
    --files) files="${2:?--files needs a number}"; shift ;;
    --runs) runs="${2:?--runs needs a number}"; shift ;;
    --keep) keep=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "validate.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

TARGET_DIR_MS=1000
TARGET_ONE_MS=20

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${FETCHFLOW_BIN:-$root/target/release/fetchflow}"

if [[ -z "${FETCHFLOW_BIN:-}" ]]; then
  echo "==> cargo build --release"
  (cd "$root" && cargo build --release --quiet) || { echo "validate.sh: release build failed" >&2; exit 2; }
fi
[[ -x "$bin" ]] || { echo "validate.sh: $bin not found after the build" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/fetchflow-bench.XXXXXX")"
if ((keep)); then echo "==> keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
dir="$work/workflows"

echo "==> generating $files workflows into $dir"
python3 "$root/benches/gen_workflows.py" "$dir" "$files" || { echo "validate.sh: generator failed" >&2; exit 2; }
generated=("$dir"/*.yaml)
one="${generated[0]}"
echo "    ${#generated[@]} files, $(cat "${generated[@]}" | wc -l) lines, $(du -sh "$dir" | cut -f1)"

# A benchmark of a validator that rejects its input measures the wrong thing: require exit 0 first.
for target in "$dir" "$one"; do
  if ! "$bin" validate "$target" >"$work/out.txt" 2>&1; then
    echo "validate.sh: 'fetchflow validate $target' did not exit 0; first lines of its output:" >&2
    head -n 30 "$work/out.txt" >&2
    exit 2
  fi
done

# measure NAME CMD... -> prints "mean min max" in milliseconds
measure() {
  local name="$1"; shift
  if command -v hyperfine >/dev/null 2>&1; then
    local shell_opt=()
    hyperfine -N --runs 1 true >/dev/null 2>&1 && shell_opt=(-N)   # no shell: exact process time
    hyperfine "${shell_opt[@]}" --warmup 3 --runs "$runs" --style none \
      --export-json "$work/$name.json" -- "$(printf '%q ' "$@")" >/dev/null 2>"$work/$name.err" ||
      { cat "$work/$name.err" >&2; return 1; }
    python3 - "$work/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f'{r["mean"] * 1e3:.1f} {r["min"] * 1e3:.1f} {r["max"] * 1e3:.1f}')
PY
  else
    local i t0 t1 samples=()
    for ((i = 0; i < 3; i++)); do "$@" >/dev/null 2>&1; done
    for ((i = 0; i < runs; i++)); do
      t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
      samples+=($(((t1 - t0) / 1000)))   # microseconds
    done
    printf '%s\n' "${samples[@]}" | awk '
      { s += $1; if (NR == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
      END { printf "%.1f %.1f %.1f\n", s / NR / 1000, lo / 1000, hi / 1000 }'
  fi
}

tool=$(command -v hyperfine >/dev/null 2>&1 && echo hyperfine || echo "bash loop (install hyperfine for better numbers: apt-get install -y hyperfine)")
echo "==> measuring with $tool, $runs runs each"
read -r dir_mean dir_min dir_max < <(measure dir "$bin" validate "$dir")
read -r one_mean one_min one_max < <(measure one "$bin" validate "$one")
[[ -n "${dir_mean:-}" && -n "${one_mean:-}" ]] || { echo "validate.sh: measurement failed" >&2; exit 2; }

status=0
report() { # label mean min max target
  local verdict="ok"
  if awk -v m="$2" -v t="$5" 'BEGIN { exit !(m > t) }'; then verdict="MISSED"; ((check)) && status=1; fi
  printf '%-44s %9s ms  (min %s, max %s)  target <= %s ms  %s\n' "$1" "$2" "$3" "$4" "$5" "$verdict"
}
echo
report "validate $files files (directory)" "$dir_mean" "$dir_min" "$dir_max" "$TARGET_DIR_MS"
report "validate one file" "$one_mean" "$one_min" "$one_max" "$TARGET_ONE_MS"
((check)) || echo "(--no-check: targets reported, not enforced)"
exit "$status"
