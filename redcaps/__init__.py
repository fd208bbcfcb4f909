"""RedCaps: collect image-text datasets from Reddit.

``redcaps`` is the Luigi-free core (sources, HTTP, images, filters, formats, CLI);
``tasks`` wraps each stage in a Luigi task and ``pipeline`` wires the stages into workflows.
"""

__version__ = "2.0.0.dev0"

#: The dataset version written into ``info.version`` (the official release says "1.0").
FORMAT_VERSION = "1.0"
