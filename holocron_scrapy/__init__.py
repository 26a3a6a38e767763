"""holocron-scrapy: MediaWiki and HTTP/JSON sources into a raw JSON lake and a SQL queue."""
