"""The real image sets: CC3M (img2dataset), FFHQ-256 and CelebA-HQ-256 (Kaggle), AFHQv2 (a
public zip), and the ready Sentry subset on Kaggle."""
