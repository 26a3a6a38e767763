"""``-a recrawl=changed`` from a wiki's change feeds: what changed since the source's sync point.

One query reads both feeds from the sync point on (``rcdir=newer``/``ledir=newer``, continued to
the end): ``list=recentchanges`` for edits and new pages, ``list=logevents`` for deletions,
restores, moves, uploads, merges and imports. Each entry names a title (a move also its target);
:func:`.feed_plan.plan` decides, from the work items those titles name, what goes back into the
queue (see there).

Before reading, :func:`probe_url` asks for one entry at or before the sync point: the wiki
keeps recent changes for ``$wgRCMaxAge`` only (not exposed by the API) and purges the oldest
first, so if none is left the feed may have lost changes, and the full ``prop=info`` pass runs
instead. Pure functions, no Scrapy and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from holocron_scrapy.store.sync import SyncPoint

if TYPE_CHECKING:
    from collections.abc import Mapping


#: Feeds are read from this long before the sync point: a change is entered in recent changes a
#: moment after its timestamp, and the first sync point comes from the crawler's clock. Entries
#: already applied are skipped by their ids, edits already recorded by their revision.
FEED_OVERLAP = timedelta(minutes=5)
#: Log types that change what a title holds (others, like protect or block, do not).
LOG_TYPES = frozenset({"delete", "move", "upload", "merge", "import"})

_COMMON = {"action": "query", "format": "json", "formatversion": "2"}


def wiki_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_wiki_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).replace(tzinfo=None)


def _url(api_url: str, params: dict[str, str], maxlag: float | None) -> str:
    if maxlag is not None and maxlag > 0:
        params["maxlag"] = f"{maxlag:g}"
    return f"{api_url}?{urlencode(params, quote_via=quote, safe='|')}"


def read_from(point: SyncPoint) -> datetime:
    return point.timestamp - FEED_OVERLAP


def probe_url(api_url: str, point: SyncPoint, maxlag: float | None = None) -> str:
    """The newest recent change at or before where the feeds are read from, the newest log
    entry, and the wiki's clock (``curtimestamp``)."""
    params = {
        **_COMMON,
        "list": "recentchanges|logevents",
        "rcdir": "older",
        "rcstart": wiki_time(read_from(point)),
        "rclimit": "1",
        "rcprop": "ids|timestamp",
        "ledir": "older",
        "lelimit": "1",
        "leprop": "ids|timestamp",
        "curtimestamp": "1",
    }
    return _url(api_url, params, maxlag)


def point_of_probe(data: dict[str, Any]) -> SyncPoint | None:
    """The sync point a full ``prop=info`` pass that starts after the probe reaches: the wiki's
    clock, and the newest log entry (older ones are not applied again)."""
    now = data.get("curtimestamp")
    if not isinstance(now, str):
        return None
    entries = (data.get("query") or {}).get("logevents") or [{}]
    logid = entries[0].get("logid")
    return SyncPoint(parse_wiki_time(now), None, logid if isinstance(logid, int) else None)


def covered(data: dict[str, Any]) -> bool:
    """Whether the probe found an entry at or before the sync point: recent changes go back
    that far, so none after it was purged."""
    return bool((data.get("query") or {}).get("recentchanges"))


def feed_url(
    api_url: str,
    point: SyncPoint,
    cont: Mapping[str, str] | None = None,
    *,
    limit: str = "max",
    maxlag: float | None = None,
) -> str:
    """One query of both feeds from the sync point on, continued with ``cont`` (the whole
    ``continue`` object: each list continues on its own, a finished one is not asked again)."""
    start = wiki_time(read_from(point))
    params = {
        **_COMMON,
        "list": "recentchanges|logevents",
        "rcprop": "ids|title|timestamp|loginfo",
        "rctype": "edit|new|categorize",
        "rcdir": "newer",
        "rcstart": start,
        "rclimit": limit,
        "leprop": "ids|title|type|timestamp|details",
        "ledir": "newer",
        "lestart": start,
        "lelimit": limit,
    }
    params.update(cont or {})
    return _url(api_url, params, maxlag)


def embeddedin_url(
    api_url: str,
    title: str,
    cont: Mapping[str, str] | None = None,
    *,
    limit: str = "max",
    maxlag: float | None = None,
) -> str:
    """The pages transcluding ``title`` (every namespace), continued with ``cont``."""
    params = {**_COMMON, "list": "embeddedin", "eititle": title, "eilimit": limit}
    params.update(cont or {})
    return _url(api_url, params, maxlag)


@dataclass(frozen=True, slots=True)
class Change:
    """One feed entry: what happened (``edit``, ``new``, or the log's ``type/action``) to
    ``title``; a move's ``target``; an edit's revision id."""

    kind: str
    ns: int
    title: str
    revid: int | None = None
    target: tuple[int, str] | None = None
    dest: str | None = None  # a merge's destination


@dataclass(slots=True)
class FeedPage:
    """The changes of one feed response not yet applied, and how far the feeds got."""

    changes: list[Change] = field(default_factory=list)
    timestamp: datetime | None = None
    rc_id: int | None = None
    log_id: int | None = None

    def advance(self, point: SyncPoint) -> SyncPoint:
        """``point`` moved past this page's entries."""
        return SyncPoint(
            max(point.timestamp, self.timestamp or point.timestamp),
            _max(point.rc_id, self.rc_id),
            _max(point.log_id, self.log_id),
        )


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def read_feed(data: dict[str, Any], point: SyncPoint) -> FeedPage:
    """The changes of one feed response that ``point`` has not applied yet (entries up to its
    ``rc_id`` / ``log_id`` were)."""
    query = data.get("query") or {}
    page = FeedPage()
    for entry in query.get("recentchanges", ()):
        rcid, title = entry.get("rcid"), entry.get("title")
        if not isinstance(rcid, int) or not isinstance(title, str):
            continue
        _seen(page, entry)
        page.rc_id = _max(page.rc_id, rcid)
        if point.rc_id is not None and rcid <= point.rc_id:
            continue
        revid = entry.get("revid")
        kind = {"new": "new", "categorize": "categorize"}.get(str(entry.get("type")), "edit")
        page.changes.append(
            Change(kind, int(entry.get("ns", 0)), title, revid if isinstance(revid, int) else None)
        )
    for entry in query.get("logevents", ()):
        logid, title = entry.get("logid"), entry.get("title")
        if not isinstance(logid, int) or not isinstance(title, str):
            continue
        _seen(page, entry)
        page.log_id = _max(page.log_id, logid)
        if (point.log_id is not None and logid <= point.log_id) or entry.get(
            "type"
        ) not in LOG_TYPES:
            continue
        params = entry.get("params") or {}
        target = None
        if isinstance(params.get("target_title"), str):
            target = (int(params.get("target_ns", 0)), params["target_title"])
        dest = params.get("dest_title") if isinstance(params.get("dest_title"), str) else None
        kind = f"{entry.get('type')}/{entry.get('action')}"
        page.changes.append(Change(kind, int(entry.get("ns", 0)), title, None, target, dest))
    return page


def _seen(page: FeedPage, entry: Mapping[str, Any]) -> None:
    stamp = entry.get("timestamp")
    if isinstance(stamp, str):
        moment = parse_wiki_time(stamp)
        page.timestamp = moment if page.timestamp is None else max(page.timestamp, moment)


def embedding_titles(data: dict[str, Any]) -> list[tuple[int, str]]:
    """``(ns, title)`` of the pages an ``embeddedin`` response lists."""
    return [
        (int(entry.get("ns", 0)), entry["title"])
        for entry in (data.get("query") or {}).get("embeddedin", ())
        if isinstance(entry.get("title"), str)
    ]
