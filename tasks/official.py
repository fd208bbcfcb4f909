"""The official RedCaps annotation zip: fetch (or take a local copy), check, extract."""

from __future__ import annotations

import luigi

from redcaps.dataset.official import fetch_and_extract
from tasks.base import InDataDir


class OfficialAnnotations(InDataDir):
    """Extract ``annotations/*.json`` of the release zip into ``<data_dir>/official/``."""

    source = luigi.Parameter(description="Path or http(s) URL of redcaps_v1.0_annotations.zip")
    sha256 = luigi.OptionalParameter(default=None, description="Expected sha256 of the zip")

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.official_marker))

    def run(self) -> None:
        fetch_and_extract(self.source, self.layout.official, sha256=self.sha256, marker=self.output().path)
