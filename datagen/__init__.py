"""Getting images onto disk: the dataset manifest, the embedded demo dataset, the Sentry subset."""
