"""The summary table that bench/run-all prints and the page it writes, docs/benchmarks.md."""

from __future__ import annotations

import datetime
from typing import Any

# Column headings of the figures' rows, in the order they appear.
HEADINGS = {
    "issuer": "issuer", "target": "target", "server": "server", "sweep": "sweep",
    "process": "process",
    "certificates": "certificates", "failed": "failed", "enqueued": "enqueued",
    "per_minute": "per minute", "per_second": "per second",
    "p50_ms": "p50 ms", "p99_ms": "p99 ms",
    "cpu_seconds_per_certificate": "CPU s / certificate",
    "x_limit": "x limit", "x_certbot": "x certbot", "x_empty": "x empty method",
    "x_nginx": "x nginx", "errors": "errors", "socket_errors": "socket errors",
    "share_404": "404 share", "api_cpu_share": "api CPU (cores)",
    "select_and_insert_seconds": "select + insert s", "enqueue_seconds": "enqueue s",
    "total_seconds": "total s", "rss_before_mb": "RSS before MB", "rss_peak_mb": "peak RSS MB",
    "rss_mb": "RSS MB", "note": "note",
}


def format_value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = [key for key in HEADINGS if any(key in row for row in rows)]
    columns += [key for row in rows for key in row if key not in columns]
    lines = ["| " + " | ".join(HEADINGS.get(column, column) for column in columns) + " |",
             "| " + " | ".join("---" if index == 0 else "---:"
                               for index, _ in enumerate(columns)) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(column)) for column in columns)
                     + " |")
    return "\n".join(lines)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "not measured"}[met]


def _goal_lines(figure: dict) -> list[dict[str, Any]]:
    goals = figure["sub_goals"] or [{"name": figure["goal"], "ratio": figure["ratio"],
                                     "target": figure["target"],
                                     "higher_is_better": figure["higher_is_better"],
                                     "met": figure["met"]}]
    return [{"figure": figure["title"], "goal": goal["name"],
             "measured": goal["ratio"],
             "target": f"{'>=' if goal['higher_is_better'] else '<='} {goal['target']:g}",
             "result": _verdict(goal["met"])} for goal in goals]


def summary_table(figures: list[dict]) -> str:
    rows = [line for figure in figures for line in _goal_lines(figure)]
    lines = ["| figure | goal | measured | target | result |", "| --- | --- | ---: | ---: | --- |"]
    for row in rows:
        lines.append(f"| {row['figure']} | {row['goal']} | {format_value(row['measured'])} | "
                     f"{row['target']} | {row['result']} |")
    return "\n".join(lines)


def merge_memory(figures: list[dict]) -> list[dict]:
    """Join the memory readings that several benchmarks report into one figure."""
    memory = [figure for figure in figures if figure["key"] == "memory"]
    others = [figure for figure in figures if figure["key"] != "memory"]
    if not memory:
        return others
    merged = dict(memory[0])
    merged["rows"] = [row for figure in memory for row in figure["rows"]]
    ratios = [figure["ratio"] for figure in memory if figure["ratio"] is not None]
    merged["ratio"] = max(ratios) if ratios else None
    merged["met"] = None if merged["ratio"] is None else merged["ratio"] <= 1.0
    merged["command"] = "; ".join(dict.fromkeys(figure["command"] for figure in memory))
    merged["sub_goals"] = [{"name": "largest RSS / 150 MB", "ratio": merged["ratio"],
                            "target": 1.0, "higher_is_better": False, "met": merged["met"]}]
    return others + [merged]


def render_page(figures: list[dict], machine: dict[str, str], versions: dict[str, str],
                started: datetime.datetime, minutes: float, failures: list[str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "<!-- Written by bench/run-all; do not edit by hand. Run bench/run-all again. -->",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC; bench/run-all took {minutes:.1f} minutes, "
        "installs included. Each figure is a ratio against a peer or a limit measured in "
        "the same run on the same machine, next to the absolute numbers. Absolute numbers "
        "move with whatever else the machine runs; ratios within one run move less.",
        "",
        "## Summary",
        "",
        summary_table(figures),
        "",
    ]
    if failures:
        lines += ["Benchmarks that failed in this run:", ""]
        lines += [f"- {failure}" for failure in failures]
        lines.append("")
    lines += ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in machine.items()]
    lines += ["", "## Versions", "", "| program | version |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in versions.items()]
    for figure in figures:
        lines += ["", f"## {figure['title']}", "", f"Goal: {figure['goal']}.", "",
                  f"Reproduce: `{figure['command']}`", "", markdown_table(figure["rows"]), ""]
        lines += [f"- {note}" for note in figure["notes"]]
        for title, text in figure["extra"].items():
            lines += ["", f"### {title[0].upper()}{title[1:]}", ""]
            if "\n|" in text:  # a profile summary, already a Markdown table
                lines.append(text)
            else:
                lines += ["```", text, "```"]
    return "\n".join(lines).rstrip() + "\n"
