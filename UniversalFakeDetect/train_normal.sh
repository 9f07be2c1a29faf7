#!/usr/bin/env bash
# Train a detector without active learning, then test it on every source of the val split.
# With no flags: the embedded demo dataset on the CPU. Flags pass through, e.g.
#   bash UniversalFakeDetect/train_normal.sh --data_root ~/data/sentry-subset \
#       --arch CLIP:RN50 --fix_backbone --name clip_rn50 --lr 1e-4 --batch_size 256
set -euo pipefail
exec python -m UniversalFakeDetect.train "$@"
