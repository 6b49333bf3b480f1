"""`--help` shows every help text whole: defaults written as "[preset or 1000]" are not eaten as Rich markup."""

import re

import pytest
import typer.main

from astrogen.cli import app


def _commands(command, path=()):
    """Every leaf command of the CLI as (its argument path, its click command)."""
    sub = getattr(command, "commands", None)
    if not sub:
        yield path, command
        return
    for name, child in sub.items():
        yield from _commands(child, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _visible(text: str) -> str:
    """What a reader sees of a help text written in Rich markup: escaped brackets unescaped, whitespace folded."""
    return " ".join(text.replace("\\[", "[").split())


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_keeps_bracketed_defaults(cli, monkeypatch, path, command):
    monkeypatch.setenv("COLUMNS", "2000")  # one line per option: no wrapping inside the texts we look for
    code, out, _ = cli(*path, "--help")
    assert code == 0
    shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())
    for param in command.params:
        help_text = _visible(getattr(param, "help", None) or "")
        for bracketed in re.findall(r"\[[^\]]*\]", help_text):
            assert bracketed in shown, f"{' '.join(path)} --help hides {bracketed!r} of {param.name}"


def test_simulate_help_shows_its_defaults(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    _, out, _ = cli("simulate", "--help")
    assert "Number of samples [preset or 1000]." in out
    assert "Random seed [preset or 0]" in out
    _, out, _ = cli("sample", "--help")
    assert "Samples [rows of --cond-from, or 1000]." in out
    assert "[default: 20" in out  # --steps: Typer's own default marker
