"""Restore a backup into this node's database, while the node is not running."""

import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from backups.fileformat import BackupDamaged
from backups.guard import node_processes
from backups.restore import backup_restore, backup_verify, store_is_empty
from kv.hlc import wall_ms
from kvsite.exceptions import Conflict


class Command(BaseCommand):
    help = (
        "Replace this node's data by a backup file. The whole file is verified first (a "
        "truncated or altered one is refused before anything is written); the node must not be "
        "running; a store that is not empty is refused unless --force. Everything is written in "
        "one transaction and the Merkle root checked against the backup's."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the backup file")
        parser.add_argument("--force", action="store_true", help="replace a non-empty store")
        parser.add_argument("--json", action="store_true", help="print one JSON line")

    def handle(self, *args, **options):
        started = time.monotonic()
        path = Path(options["file"])
        running = node_processes(Path(settings.KVS_DATA_DIR))
        if running:
            raise CommandError(
                f"the node on {settings.KVS_DATA_DIR} is running ({', '.join(running[:5])}): "
                "stop it first; nothing was restored"
            )
        try:
            verified = backup_verify(path)
        except BackupDamaged as error:
            raise CommandError(f"{error.detail}; nothing was restored") from None
        header = verified.header
        configured = settings.KVS_NODE_ID
        if configured and header.get("node") and configured != header["node"]:
            raise CommandError(
                f"this is a backup of {header['node']}, and this node is {configured}: restore "
                f"it into {header['node']}'s data directory (a node that joins empty gets the "
                "cluster's data by itself); nothing was restored"
            )
        call_command("migrate", verbosity=0, interactive=False)
        if not options["force"] and not store_is_empty():
            raise CommandError(
                f"the store on {settings.KVS_DATA_DIR} is not empty: --force replaces it; "
                "nothing was restored"
            )
        self.stderr.write(f"kvs restore: verified {path}; writing ...")
        try:
            backup_restore(path, force=options["force"], verified=verified)
        except (BackupDamaged, Conflict) as error:
            raise CommandError(f"{error.detail}") from None
        age_s = (wall_ms() - header["created_at"]) / 1000
        result = {
            "node": header.get("node"), "keys": header["keys"], "revision": header["revision"],
            "merkle_root": header["merkle_root"], "counts": verified.counts,
            "seconds": round(time.monotonic() - started, 3),
        }  # fmt: skip
        if age_s > settings.KVS_TOMBSTONE_TTL:
            self.stderr.write(
                f"kvs restore: warning: this backup is {age_s / 86400:.1f} days old, older than "
                "KVS_TOMBSTONE_TTL: keys deleted in the cluster since may come back when this "
                "node rejoins it. Restore so old a backup only where no other node has the data."
            )
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"restored {header.get('node')}: {result['keys']} keys, "
            f"{verified.counts['entry']} entries, {verified.counts['history']} history versions, "
            f"{verified.counts['user']} users, {verified.counts['token']} tokens, revision "
            f"{result['revision']}, Merkle root {result['merkle_root']} (checked), in "
            f"{result['seconds']} s"
        )
