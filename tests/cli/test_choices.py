"""A bad choice or an unknown option is a usage error (exit 2) that says what is valid; nothing runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reports.parquet_report import pyarrow_available
from tests.cli.helpers import invoke
from tests.paths import GOLDEN

FORMATS = ("table", "json", "csv", "markdown", "html", "perfetto", "speedscope", "folded", "parquet")
BY = ("step", "tool", "model", "session", "kind")
POLICIES = ("equal", "tokens", "memory")
WEIGHTS = ("usd", "joules", "gib_s")
CHOICES = [
    ("report", "--format", FORMATS), ("report", "--by", BY), ("report", "--policy", POLICIES),
    ("report", "--weight", WEIGHTS),
    ("run", "--format", FORMATS), ("run", "--by", BY), ("run", "--policy", POLICIES), ("run", "--weight", WEIGHTS),
    ("sessions", "--format", ("table", "json", "csv", "markdown")),
    ("diff", "--format", ("table", "markdown", "json")), ("diff", "--policy", POLICIES),
    ("whatif", "--format", ("table", "markdown", "json")), ("whatif", "--policy", POLICIES),
]


def _message(stderr: str) -> str:
    """The error as one line, without the box drawn around it (and wrapped to the terminal)."""
    return " ".join(stderr.replace("│", " ").split())


def _command(name: str, run_dir: Path, *options: str) -> list[str]:
    if name == "run":
        return ["run", "--run-dir", str(run_dir), *options, "--", sys.executable, "-c", "pass"]
    if name == "diff":
        return ["diff", str(GOLDEN), str(GOLDEN), *options]
    return [name, str(GOLDEN), *options]


@pytest.mark.parametrize(("command", "option", "choices"), CHOICES, ids=[f"{c}{o}" for c, o, _ in CHOICES])
def test_a_bad_choice_is_a_usage_error_listing_the_valid_ones(command: str, option: str, choices: tuple[str, ...],
                                                               tmp_path: Path) -> None:
    result = invoke(*_command(command, tmp_path / "run", option, "nonsense"))
    assert result.exit_code == 2, result.output
    listed = ", ".join(f"'{choice}'" for choice in choices)
    assert f"Invalid value for '{option}'" in _message(result.stderr)
    assert f"'nonsense' is not one of {listed}." in _message(result.stderr)
    assert result.stdout == "" and not (tmp_path / "run").exists()


READ = [case for case in CHOICES if case[0] != "run"]  # `run` takes each choice in tests/reports


@pytest.mark.parametrize(("command", "option", "choices"), READ, ids=[f"{c}{o}" for c, o, _ in READ])
def test_every_valid_choice_is_taken(command: str, option: str, choices: tuple[str, ...], tmp_path: Path) -> None:
    for choice in choices:
        if choice == "parquet" and not pyarrow_available():
            continue
        result = invoke(*_command(command, tmp_path / "run", option, choice))
        assert result.exit_code == 0, (choice, result.stderr)


def test_run_rejects_an_unknown_option_before_the_command(tmp_path: Path) -> None:
    result = invoke("run", "--run-dir", tmp_path / "run", "--no-such-option", "--", sys.executable, "-c", "pass")
    assert result.exit_code == 2
    assert "No such option: --no-such-option" in _message(result.stderr)
    assert "cannot start" not in result.stderr and not (tmp_path / "run").exists()


# It records one step too: a run that records nothing exits 3.
ECHO_ARGS = ("import pathlib, sys, profiler\nwith profiler.step('echo'):\n"
             "    pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:]))")


@pytest.mark.parametrize("separator", [["--"], []], ids=["after --", "no --"])
def test_run_passes_the_commands_own_options_on(separator: list[str], tmp_path: Path) -> None:
    seen = tmp_path / "argv.txt"
    result = invoke("run", "--run-dir", tmp_path / "run", "--gpu", "none", "--no-report", *separator,
                    sys.executable, "-c", ECHO_ARGS, seen, "--foo", "--format", "json", "--no-such-option")
    assert result.exit_code == 0, result.stderr
    assert seen.read_text() == "--foo --format json --no-such-option"  # the command's options, not ours
