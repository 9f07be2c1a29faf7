#!/usr/bin/env bash
# Train a detector by Bayesian active learning (MC dropout), then test it on every source.
# With no flags: a BW-LMS-T-shaped run scaled to the embedded demo dataset, on the CPU.
# The paper's settings on real data, e.g.
#   bash UniversalFakeDetect/train_active_learning.sh --data_root ~/data/sentry-subset \
#       --preset bw_lms_t --name bw_lms_t
set -euo pipefail
exec python -m UniversalFakeDetect.train --use_active_learning "$@"
