"""The driver side of stopping (latentopt.workflow.stopping): the signal noted, Snakemake's repeated
SIGTERM notice kept to one line, the paragraph a stopped driver prints. End to end on a running
demo: tests/test_stopping.py."""

from __future__ import annotations

import logging
import os
import signal
import sys

import pytest

from latentopt.workflow import layout, stopping


def test_the_stopped_driver_says_what_was_kept_and_how_to_resume(tmp_path, monkeypatch):
    results = tmp_path / "results"
    layout.checkpoint_dir(results, "psnr", "train").mkdir(parents=True)
    (layout.checkpoint_dir(results, "psnr", "train") / "batch-0123.pt").write_text("x")
    monkeypatch.setattr(sys, "argv", [".venv/bin/snakemake", "--configfile", "my config.yaml", "--cores", "2"])
    text = stopping.stopped_paragraph("SIGINT", [results])
    assert "\n" not in text and text.startswith("latentopt: stopped by SIGINT.")
    assert "Every image finished before the stop is kept in place" in text and "restored, not recomputed" in text
    assert "1 running batch(es)" in text
    assert "Resume with: .venv/bin/snakemake --configfile 'my config.yaml' --cores 2" in text


def test_the_watch_notes_the_signal_and_hands_it_to_snakemakes_handler(monkeypatch):
    seen, logger = [], logging.getLogger("test_stopping_driver")
    previous = signal.signal(signal.SIGTERM, lambda num, frame: seen.append(num))
    previous_int = signal.getsignal(signal.SIGINT)
    # Python's own SIGINT handler, as in a terminal (a suite started in the background of a
    # non-interactive shell inherits SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watch = stopping.StopWatch()
        watch.install(logger)
        os.kill(os.getpid(), signal.SIGTERM)
        assert watch.signal == "SIGTERM" and seen == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert watch.signal == "SIGTERM"  # the first signal is the one that stopped the driver
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def test_snakemakes_repeated_notice_is_shown_once(caplog):
    logger = logging.getLogger("test_stopping_once")
    signal_before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stopping.StopWatch().install(logger)
        with caplog.at_level(logging.INFO, logger=logger.name):
            for _ in range(16):
                logger.info("Will exit after finishing currently running jobs (scheduler).")
            logger.info("another line")
            logger.info("another line")
    finally:
        signal.signal(signal.SIGTERM, signal_before[0])
        signal.signal(signal.SIGINT, signal_before[1])
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("Will exit after finishing currently running jobs (scheduler).") == 1
    assert messages.count("another line") == 2
