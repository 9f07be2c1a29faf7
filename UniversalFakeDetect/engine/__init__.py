"""Training engine: batch sources, the trainer (also the active-learning learner), fitting."""
