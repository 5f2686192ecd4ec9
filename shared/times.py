"""Times an operator writes (CLI flags, admin API fields, console filters): ISO 8601, UTC unless
the text says otherwise.

One reading for every place an operator gives a time, so that the same text selects the same rows
from `callgate replay`, `POST /admin/replay/notifications` and the console's event filter. Each
caller keeps its own answer to a bad value (argparse's usage error, the JSON 400, the page's 400).
"""

from __future__ import annotations

import datetime as dt


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 date and time (`Z` or an offset, or none: read as UTC), timezone-aware.
    ValueError when `text` is not one."""
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
