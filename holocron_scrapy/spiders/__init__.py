"""The spiders: ``mediawiki`` (the Action API) and ``http`` (any JSON API or web site)."""
