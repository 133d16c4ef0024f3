"""Take a backup of this node (running or not): into KVS_BACKUP_DIR, or to --out FILE."""

import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from backups.selectors import backup_path
from backups.services import backup_create, backup_write


class Command(BaseCommand):
    help = (
        "Write a consistent snapshot of this node (entries with full version metadata, history, "
        "users, groups, tokens, rules, schemas) as a zstd-compressed backup file, while the node "
        "keeps serving. Without --out it goes into KVS_BACKUP_DIR and is listed by the API."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", help="write the backup to this file instead")
        parser.add_argument("--json", action="store_true", help="print one JSON line")

    def handle(self, *args, **options):
        started = time.monotonic()
        self.stderr.write("kvs backup: reading the store ...")
        if options["out"]:
            path = Path(options["out"]).resolve()
            header, size, sha256 = backup_write(path)
            result = {"file": str(path), "size": size, "sha256": sha256}
            result.update({name: header[name] for name in ("keys", "revision", "merkle_root")})
        else:
            backup = backup_create()
            result = {"id": backup.id, "file": str(backup_path(backup))}
            for name in ("keys", "revision", "merkle_root", "size", "sha256"):
                result[name] = getattr(backup, name)
        result["seconds"] = round(time.monotonic() - started, 3)
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"backed up {result['keys']} keys at revision {result['revision']} (Merkle root "
            f"{result['merkle_root']}) to {result['file']}: {result['size']} bytes, sha256 "
            f"{result['sha256']}, in {result['seconds']} s"
        )
        sys.stdout.flush()
