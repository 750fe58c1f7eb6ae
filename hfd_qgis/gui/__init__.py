"""Graphical fine-tuning dialog, its background task and live chart."""
