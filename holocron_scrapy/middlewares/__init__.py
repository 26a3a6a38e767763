"""Downloader middlewares (claims, budgets, Retry-After, WARC) and the state spider middleware."""
