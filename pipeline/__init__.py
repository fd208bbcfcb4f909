"""Workflow entry points: ``luigi --module pipeline <Task>``.

* ``RedCapsYear --subreddit roses --year 2020``: one subreddit-year, posts to tars;
* ``RedCapsBatch --config configs/<name>.yaml``: many, scheduled in chunks;
* ``RedCapsOfficial --annotations-dir DIR`` (or ``--annotations-zip``): the official release.

Importing this package registers every task, so stage tasks can be run directly too
(``luigi --module pipeline Tarify --annotations FILE``).
"""

from pipeline import local_scheduler, messages
from pipeline.batch import RedCapsBatch
from pipeline.official import OfficialFile, RedCapsOfficial
from pipeline.year import RedCapsYear
from tasks.collect import FetchMonth, MergeYear
from tasks.config import apply_retcode_defaults
from tasks.download import DownloadImages, DownloadImageShard
from tasks.filters import FilterFaces, FilterNsfw, FilterWords
from tasks.official import OfficialAnnotations
from tasks.publish import Publish
from tasks.tarify import Tarify
from tasks.validate import Validate

apply_retcode_defaults()
local_scheduler.install()
messages.install()

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
    "RedCapsBatch",
    "RedCapsOfficial",
    "RedCapsYear",
    "Tarify",
    "Validate",
]
