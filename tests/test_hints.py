"""Every ``storekeeper ...`` command line the code can show a user names a real command, with real flags.

Hints say what to run next, so a hint naming a command or a flag that does not
exist sends the reader into a wall. The command lines are found statically:
every string constant and f-string of every module under ``src/storekeeper``,
with each ``{...}`` replaced by the placeholder ``X`` (of docstrings, which are
prose, only their ````literal```` spans). In that text, each
``storekeeper WORD ...`` starts a command line that ends at ``;``, ``,``, a
parenthesis, a quote or a line break, so one hint may hold several::

    storekeeper services list  (or: storekeeper services create persistent --name NAME ...)

Each line is then walked through the real click command tree: every word
where a subcommand is expected must be one (``a/b`` and ``a | b`` name two), and every
``--flag`` or ``-f`` (``--host/--port`` names two; ``--url=...`` one) must be
an option of the command it follows. UPPERCASE words (APP, SERVICE, X) and
``...`` are placeholders; arguments are not counted. Words after ``--`` belong
to another program (``storekeeper test APP -- -k NAME``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

import storekeeper
from storekeeper.cli.main import cli

SRC = Path(storekeeper.__file__).parent
ROOT = typer.main.get_command(cli)
HELP_OPTIONS = frozenset((ROOT.context_settings or {}).get("help_option_names", ["--help"]))

#: What a ``{...}`` of an f-string becomes; an uppercase word, so a placeholder.
PLACEHOLDER = "X"
#: ``storekeeper`` as a word followed by a space: not ``storekeeper.portal``, ``storekeeper[local]``,
#: ``--storekeeper-scope`` or ``/var/lib/storekeeper``. The line runs to the first terminator.
COMMAND = re.compile(r"(?<![\w.\-/\[])storekeeper[ \t]+(?P<rest>[^\n;,()\"'`]*)")
#: "this storekeeper does not support", "a storekeeper checkout": the word used in a sentence.
PROSE_BEFORE = re.compile(r"\b(a|an|the|this|that|another|other)\s+$", re.IGNORECASE)
#: Strings that start with "storekeeper " and are not commands, with why.
NOT_COMMANDS = {
    "storekeeper persistent store copies": "testing/plugin.py: the title of storekeeper's pytest options",
}

#: KNOWN BAD HINTS, in modules being rewritten on other branches, so not fixed here. Each entry is
#: a command line this test finds and would reject, with where it is and what it should say.
#: Fix the hint at merge time, then remove its entry: this list must end up empty (an entry whose
#: line is no longer found fails test_known_bad_hints_are_still_there, so it cannot go stale).
KNOWN_BAD: dict[str, str] = {}


# -- finding the command lines ------------------------------------------------------------------


def _text(node: ast.AST) -> str | None:
    """The text of a string constant, f-string or sum of them; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        text = ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                text += str(value.value)
            else:  # a value glued to a word (f"start{flags}") is a word of its own
                text += (" " if text[-1:].isalnum() else "") + PLACEHOLDER
        return text
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is not None and right is not None:
            return left + right
    return None


def strings_of(source: str) -> Iterator[tuple[int, str]]:
    """Yield (line, text) of every string in ``source`` that could be shown to a user.

    Of a docstring, only its ````literal```` spans: the rest is prose ("storekeeper raises ...").
    """
    tree = ast.parse(source)
    docstrings: set[int] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if ast.get_docstring(node, clean=False) is not None:
                docstrings.add(id(node.body[0].value))  # type: ignore[attr-defined]
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(value) for value in node.values)  # read as part of the f-string
    for node in ast.walk(tree):
        text = None if id(node) in skip else _text(node)
        if text is not None and id(node) in docstrings:
            text = "\n".join(re.findall(r"``(.+?)``", text, re.DOTALL))
        if text is not None and "storekeeper" in text:
            yield getattr(node, "lineno", 0), text


def command_lines(text: str) -> list[str]:
    """Return the ``storekeeper ...`` command lines in ``text``, each as single-spaced words."""
    lines = []
    for match in COMMAND.finditer(text):
        if PROSE_BEFORE.search(text[: match.start()]):
            continue
        words = re.sub(r"\s*\|\s*", "|", match.group("rest")).split()  # "init | start": alternatives
        if words and words[-1] != "..." and words[-1].endswith("."):  # end of a sentence
            words[-1] = words[-1].rstrip(".")
        line = " ".join(["storekeeper", *[w for w in words if w]])
        if line != "storekeeper" and line not in NOT_COMMANDS:
            lines.append(line)
    return lines


def hint_lines() -> dict[str, list[str]]:
    """Map every command line found under src/storekeeper to where it is (``path:line``)."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        for lineno, text in strings_of(path.read_text(encoding="utf-8")):
            for line in command_lines(text):
                found.setdefault(line, []).append(f"{where}:{lineno}")
    return found


# -- checking one against the command tree ------------------------------------------------------


def _is_placeholder(word: str) -> bool:
    return word.endswith("...") or re.fullmatch(r"[A-Z][A-Z0-9_]*", word) is not None


def _options(command: Any) -> dict[str, int]:
    """Map each option name of ``command`` to how many words its value takes (0 for a flag).

    Usually one; as many as its metavar has words when it names more (``settings --set KEY VALUE``).
    """
    names = dict.fromkeys(HELP_OPTIONS, 0)
    for param in command.params:
        if param.param_type_name == "option":
            words = 0 if (param.is_flag or param.count) else max(1, len((param.metavar or "").split()))
            names.update(dict.fromkeys((*param.opts, *param.secondary_opts), words))
    return names


def problems(line: str) -> list[str]:
    """Return what is wrong with a ``storekeeper ...`` command line (nothing when it parses)."""
    words = line.split()
    assert words[:1] == ["storekeeper"], line
    found: list[str] = []
    commands: list[Any] = [ROOT]
    path = "storekeeper"
    i = 1
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":  # the rest goes to another program
            break
        is_group = all(hasattr(c, "commands") for c in commands)
        if word.startswith("-"):
            for name in word.split("=", 1)[0].split("/"):
                for command in commands:
                    options = _options(command)
                    if name not in options:
                        found.append(f'"{path}" has no option {name}')
                    elif is_group and options[name] and "=" not in word:
                        i += options[name]  # its value, not a subcommand
            continue
        if not is_group:  # an argument, or an option's value
            continue
        if _is_placeholder(word):  # "storekeeper ...": the command is the reader's choice
            break
        subcommands = []
        for name in re.split(r"[/|]", word):
            sub = commands[0].commands.get(name)
            if sub is None:
                found.append(f'"{path}" has no command {name!r}')
            else:
                subcommands.append(sub)
        if not subcommands:
            break
        commands = subcommands
        path = f"{path} {word}"
    return found


# -- the tests ----------------------------------------------------------------------------------

FOUND = hint_lines()


def test_every_hint_names_real_commands_and_flags() -> None:
    bad = {line: (where, problems(line)) for line, where in FOUND.items() if line not in KNOWN_BAD and problems(line)}
    assert bad == {}, "\n".join(f"{line!r} at {', '.join(w)}: {'; '.join(p)}" for line, (w, p) in bad.items())


def test_known_bad_hints_are_still_there() -> None:
    """An entry of KNOWN_BAD whose hint was fixed must go, so the list is emptied as hints are fixed."""
    assert [line for line in KNOWN_BAD if line not in FOUND] == []
    assert all(problems(line) for line in KNOWN_BAD)


def test_the_scan_finds_the_hints() -> None:
    assert len(FOUND) >= 50, sorted(FOUND)
    for line in (
        "storekeeper test APP",
        "storekeeper services create persistent --name NAME ...",
        "storekeeper services list",
        "storekeeper app-settings set X X SERVICE",
        "storekeeper services update X --host/--port/--username/--password-stdin",
        "storekeeper db init",
        "storekeeper syncstores X",
    ):
        assert line in FOUND, line


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("storekeeper db stop --force", "no option --force"),
        ("storekeeper db upgrade --debug", "no option --debug"),
        ("storekeeper db stopp", "no command 'stopp'"),
        ("storekeeper sync APP", "no command 'sync'"),
        ("storekeeper services create persistent --name NAME --role admin", "no option --role"),
        ("storekeeper services update X --host/--prot", "no option --prot"),
        ("storekeeper db init/begin", "no command 'begin'"),
        ("storekeeper db init|begin", "no command 'begin'"),
        ("storekeeper settings --list", "no option --list"),
        ("storekeeper settings rotate-key", "no command 'rotate-key'"),
        ("storekeeper settings rotate-secret-key --force", "no option --force"),
        ("storekeeper --homedir DIR apps list", "no option --homedir"),
    ],
)
def test_the_checker_rejects_a_missing_command_or_flag(line: str, needle: str) -> None:
    assert any(needle in problem for problem in problems(line)), problems(line)


@pytest.mark.parametrize(
    "line",
    [
        "storekeeper test APP",
        "storekeeper test my_first_app -- -k gages -x",
        "storekeeper services create persistent --name NAME ...",
        "storekeeper services create persistent --name local --connection postgres@localhost:5432",
        "storekeeper services update X --host/--port/--username/--password-stdin",
        "storekeeper --debug db upgrade",
        "storekeeper db stop --mode immediate",
        "storekeeper --home DIR apps list",
        "storekeeper db init/start",
        "storekeeper db init|start|stop|status",
        "storekeeper syncstores APP --database NAME --refresh -y",
        "storekeeper settings --set KEY VALUE",
        "storekeeper settings --set portal.port 8001 --get portal.port",
        "storekeeper settings --set portal.port=8001",
        "storekeeper settings rotate-secret-key --yes --json",
        "storekeeper start --host=0.0.0.0 -w 2",
        "storekeeper ...",
        "storekeeper services -h",
    ],
)
def test_the_checker_accepts_real_command_lines(line: str) -> None:
    assert problems(line) == []


def test_command_lines_are_split_out_of_a_hint() -> None:
    text = "storekeeper services list  (or: storekeeper services create persistent --name NAME ...)"
    assert command_lines(text) == [
        "storekeeper services list",
        "storekeeper services create persistent --name NAME ...",
    ]
    assert command_lines("storekeeper db stop; storekeeper settings --set local.datadir NEW_DIR) and run it") == [
        "storekeeper db stop",
        "storekeeper settings --set local.datadir NEW_DIR",
    ]
    assert command_lines("fix it, then run: storekeeper stores drop APP NAME, then storekeeper apps list.") == [
        "storekeeper stores drop APP NAME",
        "storekeeper apps list",
    ]
    assert command_lines('backend "x", which this storekeeper does not support.') == []
    assert command_lines("pip install 'storekeeper[local]' or see storekeeper.portal") == []


def test_f_strings_are_read_with_placeholders_and_docstrings_are_skipped() -> None:
    source = '''
def f(app, flags):
    """Run storekeeper nonsense --here: prose, not a hint; but ``storekeeper db stop | status`` is a command."""
    hint = f"storekeeper start{flags}  (then storekeeper app-settings set {app} {app}_db SERVICE)"
    other = "storekeeper db " + "init"
'''
    lines = [line for _, text in strings_of(source) for line in command_lines(text)]
    assert "storekeeper start X" in lines
    assert "storekeeper app-settings set X X_db SERVICE" in lines
    assert "storekeeper db init" in lines
    assert "storekeeper db stop|status" in lines
    assert not any("nonsense" in line for line in lines)
