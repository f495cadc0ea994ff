"""Corpora, manifests, datasets and data modules."""
