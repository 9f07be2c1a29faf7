"""Detectors: backbones with a linear head; data loading, training, testing and reports."""
