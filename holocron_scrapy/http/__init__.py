"""The HTTP source's logic as pure functions: URLs, pagination, payloads."""
