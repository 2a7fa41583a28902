"""Configuration: the schema of every key (defaults, checks), YAML resolution and the CLI flags."""
