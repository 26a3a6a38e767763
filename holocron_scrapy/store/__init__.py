"""The state store: every SQL statement of the crawl, one code path for three databases."""
