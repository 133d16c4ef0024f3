"""The README's shell tour, run as written against a real 3-node cluster.

Every ```sh block of README.md runs, in order, in one bash session, unless the line before it is
`<!-- tour: skip (reason) -->`, in a scratch folder where `.venv` is the project's. Only the node
addresses (127.0.0.1:8001-8003), the launcher's data directory (`var/cluster`) and the root token
(`kvs_...`) are replaced by the test cluster's. Each command must succeed: `curl` gets an answer
below 400 unless the sample under it names the status (`# 400 {...}`). A sample answer under a
command (`# {...}` or `# [...]`, continued on `#  ` lines) must match the command's output, `…`
standing for any text.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .helpers import Launch, kvs_up, show_logs

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
SKIP = re.compile(r"<!-- tour: skip\b")
SAMPLE = re.compile(r"^# (?:(?P<status>[1-5]\d\d) )?(?:→ )?(?P<json>[\[{].*)$")
CURL_STATUS = re.compile(r"^@status=(\d{3})$", re.M)


@dataclass
class Command:
    """One command of the tour: its text, its README line, and the answer shown under it."""

    text: str
    line: int
    sample: str | None = None
    status: int | None = None
    output: str = ""
    stderr: str = ""
    rc: int | None = None
    statuses: list[int] = field(default_factory=list)


def tour_blocks(text: str) -> list[tuple[int, list[str]]]:
    """The ```sh blocks of the README that the tour runs: (first line number, lines)."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            skipped = start >= 2 and SKIP.search(lines[start - 2])
            if not skipped:
                blocks.append((start + 1, body))
        i += 1
    return blocks


def _complete(text: str) -> bool:
    """Whether `text` is a whole command: no trailing backslash, no quote left open."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def tour_commands(text: str) -> list[Command]:
    """The commands of the tour, with the sample answer printed under each one."""
    commands: list[Command] = []
    for first, body in tour_blocks(text):
        pending: list[str] = []
        for offset, raw in enumerate(body):
            line = raw.rstrip()
            if not pending:
                if line.startswith("#"):
                    match = SAMPLE.match(line)
                    if match and commands and commands[-1].sample is None:
                        commands[-1].sample = match["json"]
                        commands[-1].status = int(match["status"]) if match["status"] else None
                    elif line.startswith("#  ") and commands and commands[-1].sample is not None:
                        commands[-1].sample += line[3:]
                    continue
                if not line.strip():
                    continue
            pending.append(line)
            if _complete("\n".join(pending)):
                commands.append(Command("\n".join(pending), first + offset - len(pending) + 1))
                pending = []
        assert not pending, f"README line {first}: a command is never finished"
    return commands


def sample_pattern(sample: str) -> re.Pattern:
    """A sample answer as a pattern: `…` stands for any text."""
    return re.compile(".*?".join(re.escape(part) for part in sample.split("…")), re.S)


def localize(command: str, launch: Launch) -> str:
    """The command with the README's node addresses and root token replaced by the test's."""
    for index in range(1, 4):
        command = command.replace(
            f"127.0.0.1:{8000 + index}", f"127.0.0.1:{launch.port + index - 1}"
        )
    command = command.replace("var/cluster", str(launch.data))
    return command.replace("TOKEN=kvs_...", f"TOKEN={launch.token}")


def run_tour(commands: list[Command], launch: Launch, workdir: Path) -> None:
    """Run every command in one bash session, recording each one's output, status and curl codes."""
    script = [
        # -w reports each answer's HTTP status on stderr, after the body, without changing stdout.
        "curl() { command curl -w '%{stderr}\\n@status=%{http_code}\\n' \"$@\"; }",
    ]
    for index, command in enumerate(commands):
        script += [
            f"echo '@@begin {index}'; echo '@@begin {index}' >&2",
            localize(command.text, launch),
            f"rc=$?; echo; echo '@@end {index}' \"$rc\"; echo '@@end {index}' >&2",
        ]
    (workdir / ".venv").symlink_to(README.parent / ".venv")  # `.venv/bin/kvs …` as written
    run = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input="\n".join(script) + "\n",
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    for index, command in enumerate(commands):
        out = re.search(rf"@@begin {index}\n(.*?)\n@@end {index} (\d+)", run.stdout, re.S)
        err = re.search(rf"@@begin {index}\n(.*?)@@end {index}", run.stderr, re.S)
        assert out is not None, f"README line {command.line}: no output\n{run.stdout[-2000:]}"
        command.output, command.rc = out[1].strip(), int(out[2])
        command.stderr = err[1] if err else ""
        command.statuses = [int(code) for code in CURL_STATUS.findall(command.stderr)]


def problems(command: Command, launch: Launch) -> list[str]:
    """What is wrong with one command's run."""
    found = []
    refused = [code for code in command.statuses if code >= 400]
    if command.status is not None:
        if not command.statuses or command.statuses[-1] != command.status:
            found.append(f"answered {command.statuses}, the README shows {command.status}")
    elif refused or 0 in command.statuses:
        found.append(f"answered {command.statuses}")
    elif command.rc != 0:
        found.append(f"exited {command.rc}")
    sample = command.sample and localize(command.sample, launch)
    if sample is not None and not sample_pattern(sample).fullmatch(command.output):
        found.append(f"printed {command.output!r}, the README shows {sample!r}")
    return found


def test_the_tour_parser_finds_commands_samples_and_statuses():
    text = "\n".join(
        [
            "```sh",
            "curl -s $KV/a \\",
            "  -d '{}'",
            '# {"key":"a",…,',
            '#  "value":1}',
            "curl -s $KV/b -d '{",
            '  "x": 1}\''  # a quoted value over two lines
            "   # a note, not a sample",
            "# 400 {…}",
            "```",
            "<!-- tour: skip (starts a server) -->",
            "```sh",
            "make run",
            "```",
        ]
    )
    commands = tour_commands(text)
    assert [c.text for c in commands] == [
        "curl -s $KV/a \\\n  -d '{}'",
        "curl -s $KV/b -d '{\n  \"x\": 1}'   # a note, not a sample",
    ]
    assert commands[0].sample == '{"key":"a",…,"value":1}' and commands[0].status is None
    assert (commands[1].sample, commands[1].status) == ("{…}", 400)
    assert sample_pattern(commands[0].sample).fullmatch('{"key":"a","v":2,"value":1}')
    assert not sample_pattern(commands[0].sample).fullmatch('{"key":"b","value":1}')


@pytest.mark.skipif(
    shutil.which("jq") is None, reason="the README tour uses jq (apt-get install jq)"
)
def test_the_readme_tour_runs_as_written(tmp_path, request):
    commands = tour_commands(README.read_text())
    assert len(commands) > 40, "the README tour has lost its commands"
    with kvs_up(tmp_path, nodes=3) as launch:
        run_tour(commands, launch, tmp_path)
        failures = [
            f"README line {c.line}: {c.text}\n    " + "\n    ".join(problems(c, launch))
            for c in commands
            if problems(c, launch)
        ]
        if failures:
            show_logs(request, launch)
    assert not failures, "\n".join(failures)
