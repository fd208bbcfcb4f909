"""Every outside request: the session, the egress guard, per-host limits and politeness, retries.

* ``session``: the one session factory (egress guard, proxies and CA bundle from the environment, User-Agent);
* ``egress``: which addresses may be reached; ``limits``: per-host policies and the limiter;
* ``throttle``: the adaptive rate; ``budget``: where its state lives (process or machine);
* ``retry``: the one place that decides waits, retries and give-ups;
* ``fetcher``: one image URL, politely; ``api``: one API client request; ``config``: their settings.
"""
