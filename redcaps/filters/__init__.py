"""Content filters: blocklisted words, NSFW images, faces (the RedCaps release filters)."""
