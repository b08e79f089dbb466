"""The app as uvicorn imports it (``fhirhub.api.asgi:app``), configured from the environment."""

from fhirhub.api.app import create_app

app = create_app(run_migrations=False)
