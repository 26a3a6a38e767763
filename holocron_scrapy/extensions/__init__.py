"""Crawl extensions that are not the frontier itself."""
