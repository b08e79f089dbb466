"""The one error of the views engine: a ViewDefinition or FHIRPath expression it cannot accept."""

from __future__ import annotations

from fhirhub.errors import FhirError, Issue


class ViewError(FhirError):
    """A malformed ViewDefinition, a FHIRPath it cannot parse or evaluate (HTTP 400).

    ``expression`` is where in the ViewDefinition (``ViewDefinition.select[0].column[1].path``).
    """

    def __init__(self, diagnostics: str, expression: str | None = None, code: str = "invalid"):
        super().__init__(400, [Issue(code, diagnostics, (expression,) if expression else ())])

    def at(self, expression: str) -> ViewError:
        """The same error located at ``expression`` (when it does not yet say where)."""
        if any(i.expression for i in self.issues):
            return self
        return ViewError(
            self.summary, expression, self.issues[0].code if self.issues else "invalid"
        )
