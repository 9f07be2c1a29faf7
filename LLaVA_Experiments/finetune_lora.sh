#!/usr/bin/env bash
# Step 2: LoRA fine-tuning (the original recipe: r 128, alpha 256, lr 2e-4, projector lr 2e-5,
# effective batch 8 = 8 accumulated conversations, 1 epoch). Flags pass through, e.g.
#   bash LLaVA_Experiments/finetune_lora.sh --data_root DATA \
#       --data LLaVA_Experiments/data/train_explanations.json --save_steps 100
# Resume after an interruption with the same command plus --resume.
set -euo pipefail
exec python -m LLaVA_Experiments.finetune_lora "$@"
