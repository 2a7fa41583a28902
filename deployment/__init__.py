"""Command-line scripts for deployment (importable for tests: ``from deployment import infer_wild``)."""
