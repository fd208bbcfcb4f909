"""Validate one annotation file; the task fails (non-zero exit) on any error."""

from __future__ import annotations

import luigi

from redcaps import layout
from redcaps.atomic import write_json, write_text
from redcaps.errors import RedCapsError
from redcaps.validate import validate_file
from tasks.base import StageTask


class Validate(StageTask):
    """Writes a report of warnings when the file is valid; on errors writes the problems
    beside it (``<stem>.errors.txt``) and fails, so the task stays incomplete."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.VALIDATE, self.stem)))

    def run(self) -> None:
        self.show_progress(f"validating {self.input_path.name}", 0)
        problems = validate_file(self.input_path)
        errors = [p for p in problems if p.severity == "error"]
        errors_file = self.layout.validate_errors(self.stem)
        if errors:
            write_text(errors_file, "".join(f"{p}\n" for p in problems))
            first = f"{len(errors)} validation errors (first: {errors[0]})"
            raise RedCapsError(f"{self.input_path}: {first}; all in {errors_file}")
        errors_file.unlink(missing_ok=True)
        write_json(
            self.output().path,
            {"file": str(self.input_path), "warnings": [str(p) for p in problems]},
            indent=1,
        )
        self.show_progress(f"valid, {len(problems)} warnings", 100)
