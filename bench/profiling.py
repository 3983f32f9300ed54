"""Sampling profiles of a running certsvc process with py-spy, summarised as tables.

py-spy attaches to a pid from outside, so the process runs unchanged. Its "raw"
output is one line per distinct stack: frames from the root to the leaf joined by
";", then the number of samples.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLES_PER_SECOND = 250
# A frame in py-spy's raw output: "function (path/to/file.py:123)".
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


class Recording:
    """A py-spy recording of one process, running until stop() or its duration ends."""

    def __init__(self, py_spy: Path, pid: int, output: Path, *, idle: bool,
                 max_seconds: float, gil: bool = False) -> None:
        self.output = output
        # A file left by an earlier run would pass for this recording's output.
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        arguments = [str(py_spy), "record", "--pid", str(pid), "--format", "raw",
                     "--output", str(output), "--rate", str(SAMPLES_PER_SECOND),
                     "--duration", str(int(max_seconds)), "--nonblocking"]
        if idle:
            # Include threads that wait (sleep, socket reads): a wall-clock profile.
            arguments.append("--idle")
        if gil:
            # Only stacks of the thread that holds the GIL: where a CPU-bound Python
            # process spends its interpreter time.
            arguments.append("--gil")
        self.log = output.with_suffix(".log")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> Path | None:
        """Stop recording and return the raw output, or None when py-spy wrote none."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if not self.output.exists():
            logger.warning("py-spy wrote no profile; see %s", self.log)
            return None
        return self.output


Frame = tuple[str, str]
"""A stack frame as (function, file)."""
Matcher = Callable[[list[Frame]], bool]


def _named(function: str, names: Sequence[str]) -> bool:
    """Return whether a frame's function ("Class.method" or "function") is one of names."""
    return function.rpartition(".")[2] in names


def leaf_function(*names: str) -> Matcher:
    """Match stacks whose innermost Python frame is one of names (C calls such as
    time.sleep show as time in the Python function that made them)."""
    return lambda frames: bool(frames) and _named(frames[-1][0], names)


def calls_function(*names: str) -> Matcher:
    """Match stacks with a frame of one of names anywhere."""
    return lambda frames: any(_named(function, names) for function, _ in frames)


def leaf_in_files(*fragments: str) -> Matcher:
    """Match stacks whose innermost frame in any file is in a file containing a fragment,
    looking past frames of other files: the first library found from the leaf."""
    def match(frames: list[Frame]) -> bool:
        return bool(frames) and any(fragment in frames[-1][1] for fragment in fragments)
    return match


@dataclasses.dataclass
class Summary:
    """Shares of samples: by category (first matching rule) and by function."""

    samples: int
    dropped: int
    """Samples of other threads, or of stacks py-spy caught only in part."""
    categories: list[tuple[str, float]]
    inclusive: list[tuple[str, float]]
    self_time: list[tuple[str, float]]

    def to_markdown(self, title: str) -> str:
        lines = [f"{title}: {self.samples} samples"
                 + (f" ({self.dropped} of other threads or partial stacks left out)"
                    if self.dropped else ""), "",
                 "| where the time goes | share |", "| --- | ---: |"]
        lines += [f"| {name} | {share:.1%} |" for name, share in self.categories]
        lines += ["", "| certsvc and RQ functions, inclusive | share |", "| --- | ---: |"]
        lines += [f"| `{name}` | {share:.1%} |" for name, share in self.inclusive]
        lines += ["", "| innermost Python function (self time) | share |", "| --- | ---: |"]
        lines += [f"| `{name}` | {share:.1%} |" for name, share in self.self_time]
        return "\n".join(lines)


def _parse(raw_path: Path) -> list[tuple[list[Frame], int]]:
    stacks = []
    for line in raw_path.read_text(errors="replace").splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = []
        for frame in stack_text.split(";"):
            match = _FRAME.match(frame.strip())
            if match:
                frames.append((match.group("function"), match.group("file")))
            else:
                frames.append((frame.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks


def _short_file(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/wt-bench/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path


def summarize(raw_path: Path, categories: Sequence[tuple[str, Matcher]], *,
              root_function: str, focus_files: Sequence[str], top: int = 15) -> Summary:
    """Summarise a raw profile of one thread.

    Only stacks whose outermost frame is root_function count (py-spy's raw format
    does not name threads; the main thread starts at "<module>"). Each stack counts
    for the first category whose matcher accepts it, or "other". The inclusive table
    lists functions of files containing one of focus_files.
    """
    stacks = _parse(raw_path)
    kept = [(frames, count) for frames, count in stacks
            if frames and frames[0][0] == root_function]
    dropped = sum(count for _, count in stacks) - sum(count for _, count in kept)
    total = sum(count for _, count in kept) or 1
    by_category: collections.Counter[str] = collections.Counter()
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive_counts: collections.Counter[str] = collections.Counter()
    for frames, count in kept:
        category = next((name for name, matcher in categories if matcher(frames)), "other")
        by_category[category] += count
        function, file = frames[-1]
        self_counts[f"{function} ({_short_file(file)})"] += count
        names = {f"{function} ({_short_file(file)})" for function, file in frames
                 if any(fragment in file for fragment in focus_files)}
        for name in names:
            inclusive_counts[name] += count
    # Frames under nearly every sample (the process's main loop) carry no information.
    inclusive = [(name, count / total) for name, count in inclusive_counts.most_common()
                 if count / total < 0.97]
    return Summary(
        samples=total,
        dropped=dropped,
        categories=[(name, count / total) for name, count in by_category.most_common()],
        inclusive=inclusive[:top],
        self_time=[(name, count / total) for name, count in self_counts.most_common(top)],
    )
