"""The README, checked against the code, so the two cannot drift apart.

- Its ```python blocks run in order in one namespace, as a reader pasting them into one session
  would, in a folder holding a tiny real ``street.mp4``. A block that cannot run here (it needs an
  official checkpoint) carries ``<!-- readme-test: skip (the reason) -->`` on the line above its
  fence and is skipped with that reason. A failing block fails naming its README line, and its
  traceback points at README lines. Shapes written as comments are checked:
  ``name = ...  # (1, 19, 32, 64)`` against ``name.shape``, ``print(...)  # torch.Size([...]) ...``
  against what the block printed.
- Every ``streamdeq SUBCOMMAND ...`` it shows (code spans, the command table, ```bash blocks)
  names a subcommand that exists, options that subcommand has, choices its options accept, and
  benchmarks / experiments that are registered.
- Every dotted ``streamdeq.name`` and every model name it mentions exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from .data.clips import write_clip

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->")
FENCE = re.compile(r"```(?P<lang>[\w-]*)\s*$")
#: The tour's video: sides that are not multiples of 4, so ``h = ceil(H / 4)`` is tested.
STREET_HEIGHT, STREET_WIDTH, STREET_FRAMES = 50, 66, 3


# --- the README's parts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block: ``line`` is the README line of its first code line (1-based)."""

    lang: str
    line: int
    source: str
    skip: str | None = None

    @property
    def first_line(self) -> str:
        return next((text.strip() for text in self.source.splitlines() if text.strip()), "")


def fenced_blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, in order, with their skip marks."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        above = next((t.strip() for t in reversed(lines[:index]) if t.strip()), "")
        mark = SKIP_MARK.fullmatch(above)
        source = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(opening["lang"], index + 2, source, mark and mark["reason"]))
        index = end + 1
    return blocks


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced blocks."""
    outside, in_fence = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence:
            outside.append((number, line))
    return outside


def code_spans(line: str) -> list[str]:
    """Inline code spans of a line; ``\\|`` (a pipe inside a table cell) read as ``|``."""
    return [span.replace("\\|", "|") for span in re.findall(r"`([^`]+)`", line)]


README_TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = [block for block in fenced_blocks(README_TEXT) if block.lang == "python"]


# --- running the python blocks ---------------------------------------------------------------


@dataclass
class ReadmeSession:
    """One namespace the blocks run in, in README order; each block runs once."""

    workdir: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__readme__"})
    printed: dict[int, str] = field(default_factory=dict)
    after: dict[int, dict[str, Any]] = field(default_factory=dict)  # names after each block
    errors: dict[int, str] = field(default_factory=dict)

    def run(self, block: Block) -> str:
        """Run ``block`` (and any earlier block not yet run); what it printed, or a failure."""
        for earlier in (
            PYTHON_BLOCKS[: PYTHON_BLOCKS.index(block)] if block in PYTHON_BLOCKS else []
        ):
            if earlier.skip is None and earlier.line not in self.printed:
                self._execute(earlier)
        if block.line not in self.printed:
            self._execute(block)
        if block.line in self.errors:
            pytest.fail(self.errors[block.line], pytrace=False)
        return self.printed[block.line]

    def _execute(self, block: Block) -> None:
        # Padding puts the code at its README lines, so tracebacks name README lines.
        code = compile("\n" * (block.line - 1) + block.source, str(README), "exec")
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output):
                exec(code, self.namespace)
        except Exception as error:
            trace = "".join(traceback.format_exception(error))
            self.errors[block.line] = (
                f"README.md line {block.line}: the block starting {block.first_line!r} "
                f"raised {type(error).__name__}: {error}\n"
                f"printed:\n{output.getvalue()}\n{trace}"
            )
        self.printed[block.line] = output.getvalue()
        self.after[block.line] = dict(self.namespace)


@pytest.fixture(scope="module")
def readme_session(tmp_path_factory: pytest.TempPathFactory) -> ReadmeSession:
    workdir = tmp_path_factory.mktemp("readme")
    write_clip(workdir / "street.mp4", STREET_FRAMES, height=STREET_HEIGHT, width=STREET_WIDTH)
    return ReadmeSession(workdir)


def shape_claims(block: Block) -> list[tuple[int, str, tuple[int, ...]]]:
    """``name = ...  # (1, 19, 32, 64)``: (README line, name, shape)."""
    claims = []
    for offset, text in enumerate(block.source.splitlines()):
        found = re.match(r"\s*(\w+)\s*=.*#\s*\((\d+(?:,\s*\d+)*)\)", text)
        if found:
            shape = tuple(int(size) for size in found[2].split(","))
            claims.append((block.line + offset, found[1], shape))
    return claims


def printed_claims(block: Block) -> list[tuple[int, str]]:
    """``print(...)  # torch.Size([4, 45, 61]) 2 (remark)``: (README line, expected line)."""
    claims = []
    for offset, text in enumerate(block.source.splitlines()):
        found = re.match(r"\s*print\(.*#\s*(torch\.Size\(.*?)(\s*\([^()]*\))?\s*$", text)
        if found:
            claims.append((block.line + offset, found[1].strip()))
    return claims


def block_id(block: Block) -> str:
    return f"line{block.line}"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=block_id)
def test_readme_python_block_runs_as_written(
    block: Block, readme_session: ReadmeSession, monkeypatch: pytest.MonkeyPatch
):
    if block.skip is not None:
        pytest.skip(block.skip)
    monkeypatch.chdir(readme_session.workdir)
    printed = readme_session.run(block)
    names = readme_session.after[block.line]
    for line, name, shape in shape_claims(block):
        actual = tuple(names[name].shape)
        assert actual == shape, f"README.md line {line}: {name} is {actual}, not {shape}"
    for line, expected in printed_claims(block):
        shown = [text.strip() for text in printed.splitlines()]
        assert expected in shown, f"README.md line {line}: printed {shown}, not {expected!r}"


def test_readme_has_python_blocks_to_run():
    assert len(PYTHON_BLOCKS) >= 3, "the README's tour and custom-model examples are gone"


def test_readme_tour_output_is_the_frame_at_a_quarter_resolution(
    readme_session: ReadmeSession, monkeypatch: pytest.MonkeyPatch
):
    """The tour's claim: HxWx3 uint8 -> (19, h, w) logits, h = ceil(H / 4)."""
    tour = next(b for b in PYTHON_BLOCKS if "open_video(" in b.source and b.skip is None)
    monkeypatch.chdir(readme_session.workdir)
    readme_session.run(tour)
    names = readme_session.after[tour.line]
    height, width = names["frame"].image.shape[:2]
    assert (height, width) == (STREET_HEIGHT, STREET_WIDTH)
    expected = (19, math.ceil(height / 4), math.ceil(width / 4))
    assert tuple(names["result"].output.shape) == expected
    assert names["info"].index == STREET_FRAMES - 1  # the whole video was streamed


# --- the commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A ``streamdeq SUB ...`` the README shows; ``extra_options`` come from the table's
    description of it."""

    line: int
    text: str
    extra_options: tuple[str, ...] = ()

    @property
    def words(self) -> list[str]:
        tokens = self.text.split()
        start = next(
            i for i, t in enumerate(tokens) if t == "streamdeq" or t.endswith("/streamdeq")
        )
        return tokens[start + 1 :]

    @property
    def subcommand(self) -> str:
        return self.words[0] if self.words else ""

    def options(self) -> list[tuple[str, list[str]]]:
        """(--option, values written after it, e.g. ``stream|baseline`` -> both)."""
        found, words = [], [w.strip("[]") for w in self.words[1:]]
        for index, word in enumerate(words):
            option = re.fullmatch(r"(--[a-z][a-z0-9-]*)(?:=(\S+))?", word)
            if option is None:
                continue
            value = option[2] or (words[index + 1] if index + 1 < len(words) else "")
            values = [] if value.startswith("-") or value == "|" else value.split("|")
            found.append((option[1], values))
        return found + [(name, []) for name in self.extra_options]

    def positional_names(self) -> list[str]:
        """Lower-case words before the first option (``fig2|fig3``, ``all``); upper-case ones
        (NAME, INPUT) are placeholders."""
        names = []
        for word in self.words[1:]:
            if word.startswith(("-", "[")):
                break
            names += [n for n in re.split(r"[|,]", word) if re.fullmatch(r"[a-z][a-z0-9-]*", n)]
        return names


def is_command(text: str) -> bool:
    return any(t == "streamdeq" or t.endswith("/streamdeq") for t in text.split()[:-1])


def table_commands(number: int, line: str) -> list[Command]:
    """A command table row: the commands of its first cell, with the options its description
    names (``--clips``, ``--model``/``--checkpoint``) added to each, and the commands its
    description shows."""
    cells = re.split(r"(?<!\\)\|", line)[1:-1]
    if len(cells) < 2:
        return []
    described = code_spans("|".join(cells[1:]))
    options = tuple(
        re.match(r"--[a-z][a-z0-9-]*", span)[0] for span in described if span.startswith("--")
    )
    listed = [Command(number, span, options) for span in code_spans(cells[0]) if is_command(span)]
    return listed + [Command(number, span) for span in described if is_command(span)]


def readme_commands(text: str) -> list[Command]:
    """Every ``streamdeq ...`` in code spans, the command table and ```bash blocks."""
    commands = []
    for number, line in prose_lines(text):
        if line.startswith("|"):
            commands += table_commands(number, line)
        else:
            commands += [Command(number, s) for s in code_spans(line) if is_command(s)]
    for block in fenced_blocks(text):
        if block.lang not in ("bash", "sh", "shell", "console"):
            continue
        for offset, line in enumerate(block.source.splitlines()):
            for part in re.split(r"&&|\|\||;", line):
                if is_command(part):
                    commands.append(Command(block.line + offset, part.strip()))
    return commands


def command_problems(command: Command, cli: Any) -> list[str]:
    """What in ``command`` the command line does not have."""
    where = f"README.md line {command.line}: `{command.text}`"
    sub = cli.commands.get(command.subcommand)
    if sub is None:
        return [f"{where}: no subcommand {command.subcommand!r} (there are {sorted(cli.commands)})"]
    problems, params = [], {}
    for param in sub.params:
        for name in (*param.opts, *param.secondary_opts):
            params[name] = param
    for option, values in command.options():
        param = params.get(option)
        if param is None:
            problems.append(f"{where}: `streamdeq {command.subcommand}` has no {option}")
        elif option_choices(param) is not None:
            wrong = [v for v in values if v not in option_choices(param)]
            if wrong:
                problems.append(f"{where}: {option} does not accept {wrong}")
    registered = registered_names(command.subcommand)
    if registered is not None:
        unknown = [n for n in command.positional_names() if n not in registered]
        if unknown:
            problems.append(f"{where}: no {command.subcommand} named {unknown}")
    return problems


def option_choices(param: Any) -> tuple[str, ...] | None:
    """The values an option accepts, None when any: click keeps them on ``param.type``, the
    click typer vendors (0.29) on ``param.type_descriptor``."""
    for holder in (getattr(param, "type", None), getattr(param, "type_descriptor", None)):
        choices = getattr(holder, "choices", None)
        if choices is not None:
            return tuple(choices)
    return None


def registered_names(subcommand: str) -> set[str] | None:
    """The names ``streamdeq bench NAME`` / ``streamdeq experiment NAME`` accept."""
    if subcommand == "bench":
        from streamdeq.bench import list_benchmarks

        return {"all", *list_benchmarks()}
    if subcommand == "experiment":
        from streamdeq.experiments import list_experiments

        return set(list_experiments())
    return None


def cli_group() -> Any:
    """The app as click sees it (typer vendors click, so no click types are named here)."""
    from streamdeq.app.cli import app

    return typer.main.get_command(app)


def test_readme_commands_use_subcommands_options_and_names_that_exist():
    commands = readme_commands(README_TEXT)
    assert {"run", "demo", "experiment", "bench", "convert"} <= {c.subcommand for c in commands}
    cli = cli_group()
    problems = [problem for command in commands for problem in command_problems(command, cli)]
    assert not problems, "\n".join(problems)


def test_readme_subcommands_show_their_help():
    from streamdeq.app.cli import app

    for sub in sorted({command.subcommand for command in readme_commands(README_TEXT)}):
        shown = CliRunner().invoke(app, [sub, "--help"], terminal_width=200)
        assert shown.exit_code == 0, f"streamdeq {sub} --help: {shown.output}"


# --- names -----------------------------------------------------------------------------------


def resolve_dotted(name: str) -> Any:
    """``streamdeq.stream.protocol.StreamableModel`` -> the object (ImportError/AttributeError
    if the README names something that is not there)."""
    import importlib

    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(name)


def test_readme_dotted_names_exist():
    names = sorted(set(re.findall(r"(?<![\w.])streamdeq(?:\.[A-Za-z_]\w*)+", README_TEXT)))
    assert names, "the README names no streamdeq.* objects"
    missing = []
    for name in names:
        try:
            resolve_dotted(name)
        except (ImportError, AttributeError) as error:
            missing.append(f"{name}: {error}")
    assert not missing, "\n".join(missing)


def test_readme_model_names_are_registered():
    from streamdeq.models import list_models

    written = set(re.findall(r"create_model\(\s*\"([^\"]+)\"", README_TEXT))
    written |= {
        s
        for _, line in prose_lines(README_TEXT)
        for s in code_spans(line)
        if re.fullmatch(r"mdeq-[a-z0-9-]+", s)
    }
    assert written, "the README names no models"
    assert written <= set(list_models()), sorted(written - set(list_models()))


def stream_keywords(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Stream settings the prose names: bare ``tol=`` spans, and (setting, value) pairs from
    ``shot_policy="keep" | "reset"`` spans and the quoted schemes of the paragraph that opens
    with ``StreamDEQ(model, mode=...)``."""
    names, pairs, in_modes = set(), [], False
    for _, line in prose_lines(text):
        in_modes = (in_modes and bool(line.strip())) or "mode=...)`" in line
        for span in code_spans(line):
            keyword = re.fullmatch(r"(\w+)=(.*)", span)
            if keyword and not keyword[2]:
                names.add(keyword[1])
            elif keyword and keyword[2].startswith('"'):
                pairs += [(keyword[1], v) for v in re.findall(r'"([^"]+)"', keyword[2])]
            elif in_modes and re.fullmatch(r'"\w+"', span):
                pairs.append(("mode", span.strip('"')))
    return names, pairs


def test_readme_stream_settings_and_their_values_exist():
    from streamdeq.stream import StreamSettings

    names, pairs = stream_keywords(README_TEXT)
    assert {"tol", "budget_ms"} <= names and ("mode", "keyframe") in pairs
    known = {f.name for f in dataclasses.fields(StreamSettings)} | {"shot_policy"}
    assert names <= known, sorted(names - known)
    for setting, value in pairs:
        StreamSettings.from_options(**{setting: value})  # raises SettingsError if refused


# --- the checker itself ----------------------------------------------------------------------


def test_a_broken_block_fails_naming_its_readme_line(tmp_path: Path):
    text = "intro\n\n```python\nvalue = 1\n```\n\n```python\nvalue.missing\n```\n"
    broken = fenced_blocks(text)[1]
    session = ReadmeSession(tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"README.md line 8: .*'value.missing'"):
        session.run(broken)


def test_a_skip_mark_above_the_fence_gives_its_reason():
    text = "<!-- readme-test: skip (needs the official checkpoint) -->\n```python\nx = 1\n```\n"
    assert fenced_blocks(text)[0].skip == "needs the official checkpoint"


def test_a_shape_comment_is_read_as_a_claim():
    block = fenced_blocks("```python\nlogits = head(z)  # (1, 19, 32, 64)\n```\n")[0]
    assert shape_claims(block) == [(2, "logits", (1, 19, 32, 64))]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("`streamdeq ran x`", "no subcommand 'ran'"),
        ("`streamdeq run x [--no-such-flag]`", "has no --no-such-flag"),
        ("`streamdeq run x [--mode stream\\|sideways]`", "does not accept ['sideways']"),
        ("| `streamdeq demo` | `--clipz` to shrink |", "has no --clipz"),
        ("`streamdeq bench fastest`", "no bench named ['fastest']"),
        ("`streamdeq experiment fig2\\|fig99`", "no experiment named ['fig99']"),
        ("```bash\ncd x && .venv/bin/streamdeq demo --fast\n```", "has no --fast"),
    ],
)
def test_a_wrong_command_is_reported(text: str, problem: str):
    problems = [p for c in readme_commands(text) for p in command_problems(c, cli_group())]
    assert any(problem in p for p in problems), problems


def test_table_alternatives_and_negative_flags_are_understood():
    text = "| `streamdeq train R.yaml [--resume \\| --no-resume] [--out OUT]` | x |"
    commands = readme_commands(text)
    assert commands and all(not command_problems(c, cli_group()) for c in commands)
