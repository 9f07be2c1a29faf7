#!/usr/bin/env bash
# Step 3: explanations, verdicts and P(fake) for the test images, metrics in results/<name>/.
#   bash LLaVA_Experiments/explain.sh --data_root DATA --adapter checkpoints/llava_lora --name llava_lora
set -euo pipefail
exec python -m LLaVA_Experiments.explain "$@"
