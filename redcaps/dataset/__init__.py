"""What is published: WebDataset tars and their metadata, duplicates, the official release."""
