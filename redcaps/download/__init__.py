"""Images of an annotation file: fetch, process and store each one, per shard, with a manifest."""
