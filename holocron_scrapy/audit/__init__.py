"""``scrapy ingest_verify``: the audit of a lake and its database, in bounded memory."""
