"""The lab log (runs, notes, events in TinyDB) and per-run metric streams."""

from .store import RUN_STATUSES, Lab, LabError, RunNotFound, data_text, write_json_atomic
from .stream import MetricStream, read_metrics

__all__ = [
    "RUN_STATUSES",
    "Lab",
    "LabError",
    "MetricStream",
    "RunNotFound",
    "data_text",
    "read_metrics",
    "write_json_atomic",
]
