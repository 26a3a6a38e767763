"""The example source files, shipped as package data (holocron_scrapy.source_files): see
holocron_scrapy/packaged.py."""
