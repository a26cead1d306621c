#!/usr/bin/env bash
# Runs every fuzz target of tests/fuzz.rs with 100,000 inputs (the counts in docs/measurements.md), or with
# $EFFNETV2_FUZZ_INPUTS; each target prints one line of counts and times. Arguments go to the test
# harness, e.g. one target: `tools/fuzz.sh images`. A failure names the input's number and where a
# copy of it is (see tests/fuzz_support/mod.rs).
#
# The test profile, not --release: it keeps overflow checks and debug assertions (the IDX and MAC
# overflows fuzzing found were panics only there), and at its opt-level an input takes 0.3-3 ms,
# so a target's 100,000 inputs take 1-5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export EFFNETV2_FUZZ_INPUTS="${EFFNETV2_FUZZ_INPUTS:-100000}"
exec cargo test --test fuzz -- --nocapture "$@"
