"""The data lake on disk: record paths, atomic writes, pending files, exports, WARC."""
