"""Backbones (the ``--arch`` registry) and the detector built on them."""
