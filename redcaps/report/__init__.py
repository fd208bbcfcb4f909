"""What a run did: the terminal summary and the HTML report."""
