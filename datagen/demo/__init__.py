"""The embedded demo dataset: packaged photos as reals, seeded neural decoders as fakes."""

from datagen.demo.build import DemoConfig, generate_demo_dataset, is_complete
from datagen.demo.cache import demo_dir, ensure_demo_dataset

__all__ = ["DemoConfig", "demo_dir", "ensure_demo_dataset", "generate_demo_dataset", "is_complete"]
