"""Item pipelines: the lake file, then the ``IngestRecords`` row."""
