"""deltaboard's edge: the FastAPI service and the `deltaboard` command."""
