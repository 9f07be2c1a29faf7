"""Bayesian active learning with Monte Carlo dropout: acquisition scores, selection, the loop."""
