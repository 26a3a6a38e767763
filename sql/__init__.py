"""The SQL Server scripts, shipped as package data (holocron_scrapy.sql): see
holocron_scrapy/packaged.py."""
