"""Posts into monthly annotation files: sources, image-post rules, captions, credentials."""
