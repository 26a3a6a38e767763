"""Signals of the holocron components (send with ``crawler.signals``, as Scrapy's own).

``run_closed(run_id, source_system, source_name, reason, store)``
    Sent by the frontier after a run's last writes and its ``runs`` row are committed, before
    the state store is closed: handlers may read the run's rows through ``store`` (off the
    reactor thread) and may return a deferred or be ``async``.
"""

from __future__ import annotations

run_closed = object()
