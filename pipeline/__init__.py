"""Workflow entry points: ``luigi --module pipeline <Task>``.

* ``RedCapsYear --subreddit roses --year 2020``: one subreddit-year, posts to tars;
* ``RedCapsBatch --config configs/<name>.yaml``: many, scheduled in chunks;
* ``RedCapsOfficial --annotations-dir DIR`` (or ``--annotations-zip``): the official release;
* ``PublishYear --subreddit roses --year 2020``: a year, uploaded to ``[redcaps] publish_to``.

``luigi --module pipeline`` imports this package and then runs: that import is the only hook
the ``luigi`` command gives before it builds its scheduler, so this is the project's entry
point. It registers every task (stage tasks can be run directly too: ``luigi --module pipeline
Tarify --annotations FILE``) and calls :func:`pipeline.luigi_setup.install` once; no other
module changes Luigi on import, and constructing a task changes nothing global.
"""

from pipeline import luigi_setup
from pipeline.batch import RedCapsBatch
from pipeline.official import OfficialFile, RedCapsOfficial
from pipeline.publish import PublishYear
from pipeline.year import RedCapsYear
from tasks.collect import FetchMonth, MergeYear
from tasks.download import DownloadImages, DownloadImageShard
from tasks.filters import FilterFaces, FilterNsfw, FilterWords
from tasks.official import OfficialAnnotations
from tasks.publish import Publish
from tasks.tarify import Tarify
from tasks.validate import Validate

luigi_setup.install()

__all__ = [
    "DownloadImageShard",
    "DownloadImages",
    "FetchMonth",
    "FilterFaces",
    "FilterNsfw",
    "FilterWords",
    "MergeYear",
    "OfficialAnnotations",
    "OfficialFile",
    "Publish",
    "PublishYear",
    "RedCapsBatch",
    "RedCapsOfficial",
    "RedCapsYear",
    "Tarify",
    "Validate",
]
