"""Probes: named scalars computed from a model at its eval points."""
