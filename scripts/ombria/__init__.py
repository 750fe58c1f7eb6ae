"""Pieces of the OMBRIA experiment driver (``scripts/ombria_experiment.py``): baseline, report, plots."""
