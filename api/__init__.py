"""The HTTP API (`causa serve`): an entry point beside the workers, built on the same flows."""
