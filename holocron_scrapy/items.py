"""The item the spiders yield for every fetched resource, and its canonical serialization."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from holocron_scrapy import json_bytes
from holocron_scrapy.model import IngestRow
from holocron_scrapy.store.limits import clean_text, fit_resource_id, fit_row

if TYPE_CHECKING:
    from datetime import datetime

    from holocron_scrapy.lake.files import Pending
    from holocron_scrapy.model import WorkItem

canonical_json = json_bytes.canonical_json  # importable here, as before


@dataclass
class ResourceRecord:
    """A fetched resource on its way to the lake and ``IngestRecords``; its ``resource_id`` and
    ``request_uri`` fitted to their columns (see :mod:`holocron_scrapy.store.limits`).

    ``work_item`` is the claimed queue row it completes; its ``content_hash`` is the hash of the
    last record ingested for that resource, so an unchanged resource is recognised and skipped.
    """

    work_item: WorkItem
    resource_type: str
    resource_id: str
    payload: Any
    request_uri: str
    request_method: str = "GET"
    request_headers: dict[str, str] = field(default_factory=dict)
    status_code: int = 200
    response_headers: dict[str, str] = field(default_factory=dict)
    fetched_at_utc: datetime | None = None
    duration_ms: int | None = None
    run_id: str = ""
    # The resource's version at the source (a page's lastrevid): stored with the completed work
    # item, for a later recrawl to compare with the current one. Not part of the payload hash.
    version: str | None = None
    # How the payload holds the body: "json" (the body's JSON itself), "text"
    # ({content_type, encoding, text}) or "base64" ({content_type, encoding, base64}).
    payload_format: str = "json"
    # Set by the lake pipeline: the file written under its pending name, which the IngestRecords
    # pipeline publishes once the row has committed.
    lake_pending: Pending | None = None
    # The payload's exact text when the source served it as such (a JSON body): stored, written
    # to the lake and hashed instead of a serialization of ``payload``, which would change big
    # or long numbers, duplicate keys and escapes.
    raw_payload: str | None = None

    def __post_init__(self) -> None:
        # Fitted once, so the lake file's name and metadata and the row agree.
        self.resource_id = fit_resource_id(self.resource_id)
        self.request_uri = clean_text(self.request_uri)

    @cached_property
    def payload_bytes(self) -> bytes:
        """The payload's one serialization (UTF-8), shared by the hash, the lake file and the
        row: the raw text, else :func:`~holocron_scrapy.json_bytes.canonical_bytes`."""
        if self.raw_payload is not None:
            return self.raw_payload.encode("utf-8")
        return json_bytes.canonical_bytes(self.payload)

    @cached_property
    def payload_json(self) -> str:
        if self.raw_payload is not None:
            return self.raw_payload
        return self.payload_bytes.decode("utf-8")

    @cached_property
    def hash_sha256(self) -> str:
        return hashlib.sha256(self.payload_bytes).hexdigest()

    @property
    def unchanged(self) -> bool:
        """True when the payload is identical to the last record of this resource."""
        return self.work_item.content_hash == self.hash_sha256

    def ingest_row(self) -> IngestRow:
        """The row (and the lake file's metadata), with values its columns can store: a
        ``resource_id`` too long is shortened (see :mod:`holocron_scrapy.store.limits`)."""
        assert self.fetched_at_utc is not None
        return fit_row(
            IngestRow(
                source_system=self.work_item.source_system,
                source_name=self.work_item.source_name,
                resource_type=self.resource_type,
                resource_id=self.resource_id,
                request_uri=self.request_uri,
                request_method=self.request_method,
                request_headers=self.request_headers,
                status_code=self.status_code,
                response_headers=self.response_headers,
                payload=self.payload,
                fetched_at_utc=self.fetched_at_utc,
                hash_sha256=self.hash_sha256,
                run_id=self.run_id,
                work_item_id=self.work_item.id,
                attempt=self.work_item.attempt,
                duration_ms=self.duration_ms,
                payload_json=self.payload_json,
            )
        )

    def lake_document(self) -> bytes:
        """The lake file: the record's metadata fields and the raw payload."""
        row = self.ingest_row()
        meta = {
            "source_system": row.source_system,
            "source_name": row.source_name,
            "resource_type": row.resource_type,
            "resource_id": row.resource_id,
            "request_uri": row.request_uri,
            "request_method": row.request_method,
            "status_code": row.status_code,
            "fetched_at_utc": row.fetched_at_utc.isoformat() + "Z",
            "payload_format": self.payload_format,
            "hash_sha256": row.hash_sha256,
            "run_id": row.run_id,
            "work_item_id": row.work_item_id,
            "attempt": row.attempt,
            "duration_ms": row.duration_ms,
        }
        head = json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8")
        # The payload is embedded exactly as hashed, so the file can be audited against the row.
        return head[:-2] + b',\n "payload": ' + self.payload_bytes + b"\n}\n"
