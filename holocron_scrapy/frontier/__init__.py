"""The SQL frontier: the extension that claims work, and its parts."""
