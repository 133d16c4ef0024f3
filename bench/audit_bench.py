"""What the audit trail costs: the time one event adds to a write's transaction, the rate of
bulk appends, and how long verifying the chain takes, on a fresh SQLite database in a
temporary data directory (no server: the services alone, in this process).

    .venv/bin/python bench/audit_bench.py                    # 100,000 events
    .venv/bin/python bench/audit_bench.py --events 20000 --json out.json

1. `kv.services.entry_put` of --writes new keys with and without the audit call (the audit
   hook replaced by a no-op), each in its own transaction: microseconds per write.
2. --events events appended through `events_record` in batches of 500: events per second.
3. `chain_verify()` over them: seconds, and events per second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(data: Path) -> None:
    os.environ["KVS_DATA_DIR"] = str(data)
    os.environ["KVS_PUSH_ON_COMMIT"] = "false"  # no peers, no broker
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    from django.conf import settings

    # The services alone: watch announcements and caches stay in this process.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    call_command("migrate", verbosity=0)


def writes(n: int, *, prefix: str) -> float:
    from kv import services
    from kv.acl import SYSTEM

    started = time.perf_counter()
    for i in range(n):
        services.entry_put(key=f"{prefix}/{i}", value="1", caller=SYSTEM)
    return (time.perf_counter() - started) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=2_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kvs-audit-bench-") as tmp:
        setup(Path(tmp))
        from audit.selectors import chain_verify
        from audit.services import EventIn, events_record
        from kv import services

        writes(200, prefix="warm")
        audited = writes(args.writes, prefix="audited")
        hook = services.events_record
        services.events_record = lambda events: []
        try:
            plain = writes(args.writes, prefix="plain")
        finally:
            services.events_record = hook

        started = time.perf_counter()
        for start in range(0, args.events, 500):
            count = min(500, args.events - start)
            events_record([EventIn(action="bench.event", target=f"k/{start + i}",
                                   detail={"i": start + i}) for i in range(count)])  # fmt: skip
        append_s = time.perf_counter() - started

        started = time.perf_counter()
        verdict = chain_verify()
        verify_s = time.perf_counter() - started
        assert verdict.ok, verdict
        result = {
            "load_average": os.getloadavg(),
            "put_us_with_audit": round(audited, 1),
            "put_us_without_audit": round(plain, 1),
            "audit_us_per_put": round(audited - plain, 1),
            "events": verdict.checked,
            "bulk_append_events_per_s": round(args.events / append_s),
            "verify_s": round(verify_s, 2),
            "verify_events_per_s": round(verdict.checked / verify_s),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
