"""The progress line of `sync --once` on a terminal: throttled redraws, the final figures forced, a last newline."""

from __future__ import annotations

import io

from daemon.cli.sync import ProgressLine
from daemon.syncer.runs import RunCounts


def test_progress_line_redraws_in_place_and_ends_with_a_newline() -> None:
    """Each redraw returns to the line start and clears it; throttled unless forced; close() ends the line."""
    stream = io.StringIO()
    progress = ProgressLine(stream, min_interval_s=3600)
    progress(RunCounts(pages=1, fetched=100, inserted=100), 0.5)
    progress(RunCounts(pages=2, fetched=200, inserted=200), 1.0)  # throttled
    progress(RunCounts(pages=3, fetched=250, inserted=240, rejected=10), 1.25, force=True)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r\x1b[K") == 2
    assert "pages 1  records 100  200 rec/s" in text
    assert "pages 3  records 250  200 rec/s" in text and "rejected 10" in text
    assert "records 200" not in text
    assert text.endswith("]\n")


def test_no_output_means_no_newline() -> None:
    """A run that never drew (no terminal updates) leaves the stream untouched."""
    stream = io.StringIO()
    ProgressLine(stream).close()
    assert stream.getvalue() == ""
