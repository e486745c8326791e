"""The HTTP API: ``create_app(settings)`` builds the Starlette application (see api.app)."""
