"""Normalise: the validated records in the one comparable form the encoder consumes (``linkage.normalise``).

The step between validation and encoding, and the one path both the run and
the dry run (``tsunagu agent check``) take, so the dry run refuses exactly the
rows a run would: a value the normaliser cannot read (a name with no usable
character, a date in no known form, …) refuses its row, reported in the same
row report as validation's problems.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.core.config import SourceMapping
from agents.core.validate import Problem, department_column
from linkage.errors import FieldError
from linkage.normalise import normalise_record
from linkage.record import CanonicalRecord, NormalisedRecord


@dataclass(slots=True)
class Refused:
    """A row the normaliser cannot read: its number, the canonical field and why (Japanese)."""

    row: int
    field: str
    reason: str

    def problem(self, file: str, mapping: SourceMapping) -> Problem:
        """The row report's entry for this refusal (named by the department's column)."""
        return Problem(file, self.row, department_column(mapping, self.field), self.field, self.reason)


def normalise(row: int, record: CanonicalRecord) -> NormalisedRecord | Refused:
    """``record`` (row ``row`` of its file) normalised, or why it cannot be."""
    try:
        return normalise_record(record)
    except FieldError as exc:
        return Refused(row, exc.field, exc.reason)
