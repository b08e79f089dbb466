"""One ingest pipeline for every source: adapters map, the pipeline keeps, normalises, stores.

The public interface adapters use: :class:`Adapter`, :class:`Message`, :class:`Mapped`,
:class:`Merge`, :class:`Context`, and the canonical value functions in
:mod:`fhirhub.ingest.canonical`.
"""

from fhirhub.ingest.adapters import Adapter, Context, Mapped, Merge, Message

__all__ = ["Adapter", "Context", "Mapped", "Merge", "Message"]
