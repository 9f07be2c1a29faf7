"""Data for the detectors: where the dataset is, image datasets over the manifest, transforms."""
