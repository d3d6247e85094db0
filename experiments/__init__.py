"""Experiment scripts, run from the repository root as modules: `python -m experiments.transfer_digits`."""
