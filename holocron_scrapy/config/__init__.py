"""Source files: one validated model per source type, read safely."""
