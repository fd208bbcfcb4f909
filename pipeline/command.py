"""The ``luigi --module pipeline <Task>`` command: checked up front, ended by the summary.

Before luigi schedules anything, in this order, each problem one ``error:`` line:

* the command line: an unknown option, a value its parameter cannot parse (``--year abc``),
  a missing one, a value the task refuses (``--year 2031``, a bad batch config): exit 2;
* the scheduler: without ``--local-scheduler``, luigid must answer at the configured host and
  port (luigi would retry for a minute and print a traceback per attempt): exit 3;
* the root task's preflight (``pipeline.year.run_preflight``): luigi's ``scheduling_error``.

After the run, a root task that is done and has a ``summary_text()`` prints it, once, also
when it was done before the run.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from collections.abc import Iterable
from typing import Any, NoReturn

import luigi
import luigi.interface
import luigi.retcodes
from luigi.cmdline_parser import CmdlineParser
from luigi.parameter import MissingParameterException
from luigi.task_register import Register

from redcaps import preflight
from redcaps.errors import RedCapsError

#: Exit codes of the checks above (luigi's own are ``[retcode]``, see README).
USAGE_ERROR = 2
NO_SCHEDULER = 3

_MISSING = re.compile(r"requires the '(\w+)' parameter")


def fail(lines: Iterable[str], code: int) -> NoReturn:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    raise SystemExit(code)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parameter_problems(parser: CmdlineParser) -> list[str]:
    """The root task's command-line values that its parameters cannot parse, one line each."""
    task_cls = Register.get_task_cls(parser.known_args.root_task)
    problems = []
    for name, param in task_cls.get_params():
        value = getattr(parser.known_args, name, None)
        if not isinstance(value, str) or not value:
            continue  # luigi takes an empty value as not given
        try:
            param.parse(value)
        except Exception as exc:  # a parameter's parse raises what its type raises
            problems.append(f"{flag(name)} {value!r}: {exc}")
    return problems


def root_task(parser: CmdlineParser) -> luigi.Task:
    """The task the command names, or exit 2 with every problem of its values."""
    problems = parameter_problems(parser)
    if problems:
        fail(problems, USAGE_ERROR)
    try:
        return parser.get_task_obj()
    except MissingParameterException as exc:
        missing = _MISSING.search(str(exc))
        fail([f"{flag(missing.group(1))} is required" if missing else str(exc)], USAGE_ERROR)
    except (RedCapsError, ValueError) as exc:
        fail(str(exc).splitlines(), USAGE_ERROR)


def scheduler_address(core: luigi.interface.core) -> tuple[str, int]:
    """Where a worker finds luigid: ``[core] scheduler_url``, else ``scheduler_host``/``_port``."""
    if core.scheduler_url:
        url = urllib.parse.urlsplit(core.scheduler_url)
        return url.hostname or "localhost", url.port or (443 if url.scheme == "https" else 80)
    return core.scheduler_host, core.scheduler_port


def check_before_scheduling(task: luigi.Task) -> None:
    """Exit 3 when luigid is needed and not there; exit ``scheduling_error`` when the preflight
    (a workflow task's ``requires()``) finds problems. Other errors are left to luigi."""
    core = luigi.interface.core()
    if not core.local_scheduler:
        problems = preflight.check_scheduler(*scheduler_address(core))
        if problems:
            fail(problems, NO_SCHEDULER)
    try:
        if not task.complete():
            task.deps()
    except RedCapsError as exc:
        fail(str(exc).splitlines(), luigi.retcodes.retcode().scheduling_error)
    except Exception:  # noqa: BLE001 - luigi reports it (and its traceback) as it always did
        pass


def print_summary(task: luigi.Task) -> None:
    summary = getattr(task, "summary_text", None)
    if callable(summary) and task.complete():
        print("\n" + summary(), flush=True)


_luigi_run = luigi.interface._run


def run(cmdline_args: list[str] | None = None, *args: Any, **kwargs: Any) -> Any:
    """``luigi.interface._run`` as the ``luigi`` command calls it (its arguments only), checked
    first and ended by the summary; called any other way (``luigi.run`` with a task class), as is."""
    if args or kwargs:
        return _luigi_run(cmdline_args, *args, **kwargs)
    argv = sys.argv[1:] if cmdline_args is None else cmdline_args
    with CmdlineParser.global_instance(argv, allow_override=True) as parser:
        task = root_task(parser)
        check_before_scheduling(task)
    result = _luigi_run(argv)
    with CmdlineParser.global_instance(argv, allow_override=True):
        print_summary(task)
    return result


def usage_error(message: str) -> NoReturn:
    """argparse's error (an unknown option): one line instead of a page of usage."""
    fail([f"{message} (--help lists the options)"], USAGE_ERROR)


_build_parser = CmdlineParser._build_parser


def _one_line_parser(*args: Any, **kwargs: Any) -> Any:
    parser = _build_parser(*args, **kwargs)
    parser.error = usage_error
    return parser


def install() -> None:
    """Idempotent: the ``luigi`` command's run and its argument parser."""
    luigi.interface._run = run
    CmdlineParser._build_parser = staticmethod(_one_line_parser)  # type: ignore[method-assign]
