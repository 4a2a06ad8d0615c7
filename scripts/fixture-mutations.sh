#!/usr/bin/env bash
# Checks that the oracle tests cannot pass on corrupted or missing fixtures: each fixture test
# target is run (with CI=true) on
#   nan      a copy of the fixtures with one element of every float tensor set to NaN,
#   scale    a copy with every float tensor multiplied by (1 + 1e-6),
#   missing  SCARCE_FIXTURES naming a folder that does not exist,
#   empty    SCARCE_FIXTURES naming an empty folder,
# and must FAIL on every one. Prints one line per (mode, target) and exits non-zero when any
# target passed. Usage: scripts/fixture-mutations.sh [FIXTURE_ROOT] (default ../shared/fixtures).
set -uo pipefail
cd "$(dirname "$0")/.."
src="${1:-../shared/fixtures}"
[ -d "$src" ] || { echo "no fixture folder at $src" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 scripts/mutate_fixtures.py "$src" "$work/nan" nan
python3 scripts/mutate_fixtures.py "$src" "$work/scale" scale
mkdir -p "$work/empty"
targets=(
    "scarce-core ops_fixtures"
    "scarce-core protonet_fixtures"
    "scarce-metric protonet_fixtures"
    "scarce-meta maml_fixtures"
    "scarce-fed fed_fixtures"
    "scarce-fed dp_fixtures"
    "scarce-augment resample_fixtures"
    "scarce-gen diffusion_fixtures"
    "scarce-gen audit"
    "scarce-eval metrics_fixtures"
    "scarce-models backbone_fixtures"
    "scarce-ssl ssl_fixtures"
)
# Build every target once, quietly.
for t in "${targets[@]}"; do
    set -- $t
    cargo test -q -p "$1" --test "$2" --no-run 2>/dev/null || { echo "build failed: $t"; exit 2; }
done
passed=0
for mode in nan scale missing empty; do
    case $mode in
        missing) dir="$work/does-not-exist" ;;
        *) dir="$work/$mode" ;;
    esac
    for t in "${targets[@]}"; do
        set -- $t
        log="$work/$mode-$1-$2.log"
        if CI=true SCARCE_FIXTURES="$dir" cargo test -q -p "$1" --test "$2" >"$log" 2>&1; then
            echo "PASSED (wrong): $mode  $1 --test $2"
            passed=$((passed + 1))
        else
            # The panic message's first line that says what was wrong.
            why=$(awk '/panicked at/{p=1; next} p && NF {print; exit}' "$log" | cut -c1-170)
            echo "failed (right): $mode  $1 --test $2: $why"
        fi
    done
done
echo "$passed of $((4 * ${#targets[@]})) corrupted runs passed"
[ "$passed" -eq 0 ]
