"""Every outside request: the session, the egress guard, per-host limits and politeness, retries."""
