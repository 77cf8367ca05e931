"""Progress bars only on a terminal and unless REC_PROGRESS=false; the CLI's stage lines stay."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.reporting import StageEvent, print_stage, progress_enabled
from reccore.settings import env_name

TINY = ["--interactions", "5000", "--seed", "3", "--force"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("setting", "streams", "expected"),
    [
        (True, [FakeTerminal(), FakeTerminal()], True),
        (False, [FakeTerminal(), FakeTerminal()], False),
        (True, [FakeTerminal(), Pipe()], False),
        (True, [Pipe(), FakeTerminal()], False),
    ],
)
def test_progress_needs_the_setting_and_terminals(setting: bool, streams: list[io.StringIO], expected: bool) -> None:
    assert progress_enabled(setting, streams) is expected


def test_print_stage_prints_a_line_as_a_stage_starts(capsys: pytest.CaptureFixture[str]) -> None:
    print_stage(StageEvent("load", "started"))
    print_stage(StageEvent("load", "finished", 0.1))
    assert capsys.readouterr().out == "… load\n"


def run_on_a_terminal(output: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Run the CLI with terminal-like stdout and stderr; returns what each received.

    Set inside the test, not in a fixture: pytest puts its own capture streams back before the test body runs.
    """
    out, err = FakeTerminal(), FakeTerminal()
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout", out)
        patch.setattr("sys.stderr", err)
        assert main(["run", "--output", str(output), *TINY]) == 0
    return out.getvalue(), err.getvalue()


def test_a_run_on_a_terminal_draws_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = run_on_a_terminal(tmp_path, monkeypatch)
    assert "evaluate model" in err and "\r" in err
    assert "… load" in out


def test_rec_progress_false_turns_the_bars_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name("progress"), "false")
    out, err = run_on_a_terminal(tmp_path, monkeypatch)
    assert "evaluate" not in err and "\r" not in err
    assert "… load" in out


def test_no_bars_when_the_output_is_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--output", str(tmp_path), *TINY]) == 0  # capsys's streams are not terminals
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "evaluate model" not in captured.err
    assert "… load" in captured.out and "\r" not in captured.out
