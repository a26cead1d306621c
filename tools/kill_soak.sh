#!/usr/bin/env bash
# Kill-anywhere soak: the kill test (tests/train_kill.rs) with more kills, 20 by default:
#   tools/kill_soak.sh [KILLS]
# A short run is SIGKILLed at random moments and resumed each time; the test fails unless its
# final checkpoint, data cursor and resolved metrics log equal an uninterrupted run's.
set -euo pipefail
cd "$(dirname "$0")/.."
EFFNETV2_KILLS="${1:-20}" cargo test --locked --test train_kill -- --nocapture
