"""The write path in process, without HTTP: PUTs one at a time, PUTs from 32 threads at once (group
commit), and an import, on a fresh SQLite database.

    .venv/bin/python bench/write_bench.py                   # 5,000 writes per row
    .venv/bin/python bench/write_bench.py --writes 20000 --json out.json

Rows: `put c1` calls `kv.services.entry_put` in a loop (one transaction each); `put c32` runs
the same calls from 32 threads (their writes share batches); `import` gives `entries_import`
chunks of 1,000 new keys, as `POST /api/v1/import` does; `statements` is what one PUT replacing a
key runs, counted with Django's CaptureQueriesContext. The machine is shared: note `load`.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(data: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")
    os.environ["KVS_DATA_DIR"] = str(data)
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    from django.conf import settings

    # no Redis here: watch announcements go to an in-process layer
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    call_command("migrate", verbosity=0)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=5000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kvs-write-bench-") as tmp:
        setup(Path(tmp))
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from kv import services
        from kv.importing import ImportItem, entries_import

        n = args.writes
        rows = {"load": os.getloadavg()[0], "writes": n}
        started = time.perf_counter()
        for i in range(n):
            services.entry_put(key=f"c1/{i % 1000}", value=str(i))
        rows["put c1"] = rate(n, time.perf_counter() - started)

        def put(i: int) -> None:
            try:
                services.entry_put(key=f"c32/{i % 1000}", value=str(i))
            finally:
                connection.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(put, range(n)))
        rows["put c32"] = rate(n, time.perf_counter() - started)

        started = time.perf_counter()
        for start in range(0, n, 1000):
            items = [ImportItem(key=f"imp/{i}", value=str(i)) for i in range(start, start + 1000)]
            entries_import(items)
        rows["import"] = rate(n, time.perf_counter() - started)

        with CaptureQueriesContext(connection) as ctx:
            services.entry_put(key="c1/0", value="0")
        rows["statements"] = len(ctx.captured_queries)
        rows["load after"] = os.getloadavg()[0]
    for name, value in rows.items():
        print(f"{name:>12}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
