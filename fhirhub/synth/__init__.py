"""A synthetic Baubau: the city, its people and every source's records, with ground truth.

`demo_bundles(persons, seed)` yields FHIR transaction Bundles to load in order; `fhirhub synth`
(cli.synth) writes the whole city to a directory (layout in docs/synth.md)."""

from __future__ import annotations

from collections.abc import Iterator

from .generate import DEFAULT_TODAY, build, puskesmas_bundles, reference_bundle


def demo_bundles(persons: int, seed: int) -> Iterator[dict]:
    """The city's reference data (PUT, stable ids), then every Puskesmas's transaction Bundles
    (patients as conditional creates, urn:uuid references between entries)."""
    sc = build(persons, seed, DEFAULT_TODAY)
    yield reference_bundle(sc)
    for fac in sc.city.puskesmas:
        yield from puskesmas_bundles(sc, fac)


__all__ = ["demo_bundles"]
