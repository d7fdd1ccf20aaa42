"""The API's routers, one per resource; each sets its own prefix and tags."""
