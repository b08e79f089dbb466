"""The app as uvicorn imports it (``fhirhub.api.asgi:app``), configured from the environment.

Each server worker also tunes Python's cycle collector once the app is built (tests that build
apps in-process keep the interpreter's defaults):

- ``gc.freeze()``: the app's modules, FHIR model classes and settings (about 220,000 objects)
  live as long as the process, yet every full collection walked them again: 100 ms each, ten
  times in 230 Bundles, about 5 ms a Bundle.
- A young generation of 20,000 objects instead of 700: validating a Bundle allocates hundreds
  of thousands of short-lived objects, and a collection every 700 of them cost about 1.5 ms a
  Bundle. Memory grows by at most that many unreachable objects between two collections.
"""

import gc

from fhirhub.api.app import create_app

YOUNG_GENERATION = 20_000
OLDER_GENERATIONS = (20, 40)

app = create_app(run_migrations=False)

gc.collect()
gc.freeze()
gc.set_threshold(YOUNG_GENERATION, *OLDER_GENERATIONS)
