"""``--scale`` on the command line: a bad value is a usage error naming the service and number, before
anything starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmhub.cli import main


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CRMHUB_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("scale", "said"),
    [
        ("profile=two", "scale 'profile=two': the number of profile instances must be a whole number from 1"),
        ("profiles=2", "scale 'profiles=2' must look like SERVICE=N with SERVICE one of ingest, profile"),
        ("api=2", "the API runs as one instance"),
    ],
)
def test_a_bad_scale_is_a_usage_error(tmp_path: Path, scale: str, said: str) -> None:
    result = CliRunner().invoke(main, ["up", "--data-dir", str(tmp_path), "--scale", scale])
    assert result.exit_code == 2
    assert "setting scale:" in result.output and said in result.output
    assert not any(os.scandir(tmp_path)), "nothing was started"


def test_scale_is_offered_on_up_and_demo() -> None:
    for command in ("up", "demo"):
        help_text = CliRunner().invoke(main, [command, "--help"]).output
        assert "--scale TEXT" in help_text and "CRMHUB_SCALE" in help_text
