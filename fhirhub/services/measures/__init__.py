"""Population-health indicators (INDICATORS.md): the catalogue of Measures in ``measures/``
evaluated over the store into MeasureReports (``$evaluate-measure``).

- :mod:`.catalogue` reads the Measures, their parameters, the ViewDefinitions they name and the
  kelurahan → Puskesmas table (all data in ``measures/``);
- :mod:`.source` is the one place rows are read: a ViewDefinition run over the store;
- :mod:`.people` turns view rows into persons (through the patient index's Person resources) and
  their events;
- :mod:`.rules` holds the indicator rules, parameterised by the Measure;
- :mod:`.evaluate` checks the operation's parameters and builds the MeasureReport.
"""

from fhirhub.services.measures.evaluate import (
    data_requirements,
    evaluate,
    evaluate_all,
    evaluate_many,
)

__all__ = ["data_requirements", "evaluate", "evaluate_all", "evaluate_many"]
