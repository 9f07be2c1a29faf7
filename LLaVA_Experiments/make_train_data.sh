#!/usr/bin/env bash
# Step 1: explanation conversations from the base LLaVA-NeXT (guided by the truth, stored
# unguided). Resumable: re-run the same command to continue. Flags pass through, e.g.
#   bash LLaVA_Experiments/make_train_data.sh --data_root DATA --per_source 500
set -euo pipefail
exec python -m LLaVA_Experiments.make_train_data "$@"
