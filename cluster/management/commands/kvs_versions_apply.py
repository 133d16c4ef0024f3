"""Apply versions in wire form (one JSON object per line) to this node's store."""

import json
import sys
import time

import orjson
from django.core.management.base import BaseCommand, CommandError

from cluster.wire import WireError, version_parse
from kv.services import versions_apply
from kv.versions import Version


class Command(BaseCommand):
    help = (
        "Apply versions, one wire-form JSON object per line (as `Version.as_wire()` gives them), "
        "from FILE or stdin, as if a peer had replicated them: a version that is not newer than "
        "the stored one changes nothing. Each is checked as a peer's would be; a bad line stops "
        "the command (earlier chunks stay applied). Prints how many were read and applied. Used "
        "to seed nodes for benchmarks (bench/antientropy_bench.py) and to restore an exported feed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default="-", help="JSON-lines file (- for stdin)")
        parser.add_argument(
            "--chunk", type=int, default=1000, help="versions per transaction (default 1000)"
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON line.")

    def handle(self, *args, **options):
        path = options["file"]
        source = sys.stdin.buffer if path == "-" else open(path, "rb")
        started, read, applied, batch = time.monotonic(), 0, 0, []
        with source:
            for number, line in enumerate(source, start=1):
                if line.strip():
                    batch.append(self._parse(number, line))
                if len(batch) >= options["chunk"]:
                    read, applied = read + len(batch), applied + self._apply(batch, options)
                    batch = []
            read, applied = read + len(batch), applied + self._apply(batch, options)
        result = {"read": read, "applied": applied, "seconds": round(time.monotonic() - started, 3)}
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"read {read}, applied {applied} in {result['seconds']} s")

    def _parse(self, number: int, line: bytes) -> Version:
        try:
            return version_parse(orjson.loads(line))
        except orjson.JSONDecodeError as error:
            raise CommandError(f"line {number}: not JSON ({error})") from None
        except WireError as error:
            raise CommandError(f"line {number}: {error.detail}") from None

    def _apply(self, batch: list[Version], options) -> int:
        return versions_apply(batch, chunk=options["chunk"]) if batch else 0
