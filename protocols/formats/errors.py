"""The one error type the importers raise for a file that does not match its format."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A data file does not match its format.

    The message names the file, the line (1-based, counting the header) or the field, what was
    expected and what was found. It subclasses ValueError so callers that catch bad input as
    ValueError keep working.
    """
