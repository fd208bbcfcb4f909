"""Content filters (words, NSFW, faces): a Luigi-free core; tasks/filters.py wraps them.

:mod:`redcaps.filters.base` holds what they share; each filter module exposes
``filter_<kind>(annotations, ...) -> FilterOutcome``. Heavy model libraries are imported only by
the filter that needs them.
"""
