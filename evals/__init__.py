"""Evals: the golden set and the runner that gates live mode (python -m evals.run)."""
