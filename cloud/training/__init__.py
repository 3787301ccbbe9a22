"""Model training, conversion and evaluation for Skinscan (needs the `train` extra)."""
