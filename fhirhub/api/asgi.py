"""The app as uvicorn imports it (``fhirhub.api.asgi:app``), configured from the environment.
Each server worker tunes Python's cycle collector once the app is built (``fhirhub.runtime``)."""

from fhirhub.api.app import create_app
from fhirhub.runtime import tune_collector

app = create_app(run_migrations=False)
tune_collector()
