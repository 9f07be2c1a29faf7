"""The embedded demo dataset: packaged photos as reals, seeded neural decoders as fakes."""

from datagen.demo.build import DemoConfig, generate_demo_dataset
from datagen.demo.cache import ensure_demo_dataset

__all__ = ["DemoConfig", "ensure_demo_dataset", "generate_demo_dataset"]
