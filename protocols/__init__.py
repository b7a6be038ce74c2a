"""The common middle of gamer-bench: data formats, sessions, splits, tasks and metrics.

It knows nothing of models: every importer ends in one `Interactions`, and every rule of the
paper's protocol (Sections 3.2 and 4.1.3) lives here once.
"""

from protocols.interactions import Interactions, Schema, SessionRule
from protocols.queries import Queries
from protocols.sessions import FilterReport, filter_min_sessions, sessionize
from protocols.splits import SessionSplit, classic_leave_one_out

__all__ = [
    "FilterReport",
    "Interactions",
    "Queries",
    "Schema",
    "SessionRule",
    "SessionSplit",
    "classic_leave_one_out",
    "filter_min_sessions",
    "sessionize",
]
