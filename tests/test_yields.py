"""The yield per host and year (redcaps.report.yields), from manifest lines."""

from __future__ import annotations

from redcaps.report.yields import COLUMNS, rows, summary_lines, yield_plot, yields


def line(url: str, status: str, route: str | None = None) -> dict:
    return {"url": url, "status": status, **({"route": route} if route else {})}


def test_each_line_counts_once_besides_attempted_by_host_group_and_year():
    lines = [
        line("https://i.redd.it/a.jpg", "ok"),
        line("https://i.redd.it/b.jpg", "ok", "preview"),
        line("https://i.redd.it/c.jpg", "http_404"),
        line("https://i.redd.it/d.jpg", "opted_out"),
        line("https://i.redd.it/e.jpg", "timeout"),
        line("https://farm3.staticflickr.com/1/x.jpg", "ok", "rewrite"),
    ]
    table = yields([("2020", lines), ("2019", [line("https://i.imgur.com/x.jpg", "placeholder")])])
    assert list(table) == [("imgur.com", "2019"), ("redd.it", "2020"), ("staticflickr.com", "2020")]
    reddit = dict(zip(COLUMNS, rows(table)[1][2:], strict=True))
    expected = {"attempted": 5, "ok first try": 1, "rewrite": 0, "preview": 1, "dead": 1}
    assert reddit == {**expected, "opted out": 1, "to retry": 1}
    assert summary_lines(table)[2] == "  staticflickr.com 2020: attempted 1, rewrite 1"
    assert yield_plot(table).startswith("<svg") and yield_plot({}) is None
