"""The feature cache of frozen backbones."""
