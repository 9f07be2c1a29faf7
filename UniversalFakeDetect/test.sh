#!/usr/bin/env bash
# Test a trained detector on every source (default: the newest checkpoint, on the dataset it was
# trained on). Flags pass through, e.g.
#   bash UniversalFakeDetect/test.sh --ckpt checkpoints/clip_rn50/model_best.safetensors --robustness
set -euo pipefail
exec python -m UniversalFakeDetect.test "$@"
