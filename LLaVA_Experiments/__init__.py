"""The LLaVA-1.6 explainer: explanation data, LoRA fine-tuning, explanations with verdicts."""
