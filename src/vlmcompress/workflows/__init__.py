"""Runs that combine methods (a student inherited by pruning, then distilled): the layer above the method packages,
beside the CLI."""
