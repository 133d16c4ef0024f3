"""Queries on values over 100,000 documents: indexed equality and range, an unindexed scan of the
prefix, and what an index adds to the cost of a write.

    .venv/bin/python bench/query_bench.py                         # SQLite, in a temporary directory
    scripts/with-postgres .venv/bin/python bench/query_bench.py   # a throwaway PostgreSQL
    .venv/bin/python bench/query_bench.py --docs 20000 --runs 100 --json out.json

The store is migrated fresh and filled with `people/0000000` .. (rows written in bulk, as an
import would leave them). Each document is `{"user": "u<i>", "age": i % 100, "city": one of 50,
"score": a float in [0, 1), "tags": [...], "pad": "..."}`. Then, in this process (no HTTP: the
figures are the database's and the compiler's, answer encoding excluded):

- the indexes of `user`, `age`, `city` and `score` are declared and built (their build time),
- each query runs `--runs` times with random values, first page (limit 100, key order unless
  stated), and the p50 and p99 of its wall time are printed with the index that served it,
- `entry_put` (the one write path) replaces random documents `--writes` times with no index,
  then with the four indexes, then with none again (the spread of the two runs without is the
  noise of the machine), and the p50 of each is printed.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CITIES = [f"city{i:02}" for i in range(50)]


def fresh_postgres_database() -> None:
    """Under scripts/with-postgres: a database of this run's own on that server."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg

    server, name = url.rsplit("/", 1)[0], f"kvs_query_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = f"{server}/{name}"


def setup_django(tmp: str) -> None:
    fresh_postgres_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")
    os.environ["KVS_DATA_DIR"] = tmp
    os.environ["KVS_INDEX_BUILD_ON_COMMIT"] = "false"
    os.environ.setdefault("KVS_AUTH_ENABLED", "false")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    # Watch events go to an in-process layer: no Redis to start, the write path otherwise whole.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    call_command("migrate", verbosity=0)


def document(i: int, rng: random.Random) -> dict:
    return {
        "user": f"u{i}",
        "age": i % 100,
        "city": CITIES[i % len(CITIES)],
        "score": rng.random(),
        "tags": [f"t{i % 7}", f"t{i % 11}"],
        "pad": "x" * 40,
    }


def fill(count: int, rng: random.Random) -> float:
    from kv.models import Entry

    started = time.perf_counter()
    batch = []
    for i in range(count):
        batch.append(
            Entry(
                key=f"people/{i:07}",
                value=json.dumps(document(i, rng)),
                version=uuid.uuid4(),
                hlc=(1_700_000_000_000 + i) << 16,
                origin="bench",
                origin_joined_at=0,
                mode=0xF31,
                revision=i + 1,
                digest="0" * 32,
                bucket=i % 4096,
            )
        )
        if len(batch) == 5000:
            Entry.objects.bulk_create(batch)
            batch = []
    Entry.objects.bulk_create(batch)
    return time.perf_counter() - started


def timed(run, runs: int) -> dict:
    times, index = [], None
    for _ in range(runs):
        started = time.perf_counter()
        page = run()
        times.append((time.perf_counter() - started) * 1000)
        index = page.index
        count = len(page.items)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "index": index,
        "items": count,
    }


def queries(rng: random.Random, docs: int) -> dict:
    from query.language import query_parse
    from query.selectors import entries_query

    def q(where, **extra):
        body = {"prefix": "people/", "where": where, "limit": 100, **extra}
        return entries_query(query=query_parse(body))

    def eq_user():
        return q([{"path": "user", "op": "eq", "value": f"u{rng.randrange(docs)}"}])

    def eq_city():
        return q([{"path": "city", "op": "eq", "value": rng.choice(CITIES)}])

    def range_score():
        low = rng.random() * 0.99
        return q([{"path": "score", "op": "ge", "value": low}, {"path": "score", "op": "lt",
                  "value": low + 0.001}])  # fmt: skip

    def range_score_ordered():
        low = rng.random() * 0.99
        where = [{"path": "score", "op": "ge", "value": low},
                 {"path": "score", "op": "lt", "value": low + 0.001}]  # fmt: skip
        return q(where, order_by=["-score"])

    def range_age():
        low = rng.randrange(98)
        return q([{"path": "age", "op": "ge", "value": low}, {"path": "age", "op": "lt",
                  "value": low + 2}])  # fmt: skip

    def scan_pad():
        return q([{"path": "pad", "op": "eq", "value": "nothing has this"}])

    def scan_tags():
        return q([{"path": "tags", "op": "contains", "value": f"t{rng.randrange(7)}"}])

    return {
        "eq user (1 match)": eq_user,
        "eq city (2% match)": eq_city,
        "range score (0.1%)": range_score,
        "range score (0.1%), order_by -score": range_score_ordered,
        "range age (2%)": range_age,
        "unindexed: eq pad (no match, whole prefix)": scan_pad,
        "unindexed: contains tags (first page)": scan_tags,
    }


def writes(rng: random.Random, docs: int, count: int) -> dict:
    from kv.services import entry_put

    times = []
    for _ in range(count // 10):  # warm-up
        i = rng.randrange(docs)
        entry_put(key=f"people/{i:07}", value=json.dumps(document(i, rng)))
    for _ in range(count):
        i = rng.randrange(docs)
        value = json.dumps(document(i, rng))
        started = time.perf_counter()
        entry_put(key=f"people/{i:07}", value=value)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(15)
    with tempfile.TemporaryDirectory(prefix="kvs-query-bench-") as tmp:
        setup_django(tmp)
        from django.db import connection

        from query.services import index_build, index_delete, index_put

        result = {"database": connection.vendor, "docs": args.docs, "load": os.getloadavg()[0]}
        result["fill_seconds"] = round(fill(args.docs, rng), 1)
        result["write_no_index"] = writes(rng, args.docs, args.writes)
        result["unindexed"] = {
            name: timed(run, max(5, args.runs // 20))
            for name, run in queries(rng, args.docs).items()
            if name.startswith("unindexed")
        }
        builds = {}
        for path in ("user", "age", "city", "score"):
            index, _ = index_put(prefix="people/", path=path)
            started = time.perf_counter()
            built = index_build(name=index.name)
            builds[path] = {
                "state": built.state,
                "seconds": round(time.perf_counter() - started, 2),
            }
        result["builds"] = builds
        result["queries"] = {
            name: timed(run, args.runs)
            for name, run in queries(rng, args.docs).items()
            if not name.startswith("unindexed")  # measured above, before any index existed
        }
        result["write_four_indexes"] = writes(rng, args.docs, args.writes)
        for path in builds:  # and without them again: the spread of the two is the noise
            index_delete(prefix="people/", path=path)
        result["write_no_index_again"] = writes(rng, args.docs, args.writes)
        result["load_end"] = os.getloadavg()[0]
        connection.close()
    print(f"{result['database']}, {args.docs:,} documents, load {result['load']:.2f} "
          f"→ {result['load_end']:.2f}, filled in {result['fill_seconds']} s")  # fmt: skip
    for path, build in builds.items():
        print(f"  build index {path:<6} {build['seconds']:>7.2f} s  {build['state']}")
    for name, row in {**result["unindexed"], **result["queries"]}.items():
        print(f"  {name:<46} p50 {row['p50_ms']:>8.2f} ms  p99 {row['p99_ms']:>8.2f} ms  "
              f"items {row['items']:>3}  index {row['index']}")  # fmt: skip
    print(f"  entry_put p50: {result['write_no_index']['p50_ms']} ms without indexes, "
          f"{result['write_four_indexes']['p50_ms']} ms with four, "
          f"{result['write_no_index_again']['p50_ms']} ms without them again")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
