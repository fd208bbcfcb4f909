"""Workflow entry points: ``luigi --module pipeline <Task>``.

Importing this package registers every task, so stage tasks can be run directly too
(``luigi --module pipeline Tarify --annotations FILE``).
"""

from pipeline.official import OfficialFile, RedCapsOfficial
from tasks.collect import FetchMonth, MergeYear
from tasks.config import apply_retcode_defaults
from tasks.download import DownloadImages, DownloadImageShard
from tasks.official import OfficialAnnotations
from tasks.tarify import Tarify
from tasks.validate import Validate

apply_retcode_defaults()

__all__ = [
    "DownloadImageShard",
    "DownloadImages",
    "FetchMonth",
    "MergeYear",
    "OfficialAnnotations",
    "OfficialFile",
    "RedCapsOfficial",
    "Tarify",
    "Validate",
]
