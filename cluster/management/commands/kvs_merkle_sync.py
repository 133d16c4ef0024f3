"""Run one Merkle anti-entropy exchange with a peer now and report what it did."""

import json
import time
from dataclasses import asdict

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cluster.antientropy import merkle_sync
from cluster.config import Config
from cluster.transport import HttpTransport, TransportError, node_id_at


class Command(BaseCommand):
    help = (
        "Compare Merkle trees with the node at PEER_URL and repair both sides (pull what the peer "
        "has newer, push what this node has newer), as the periodic anti-entropy task does, but "
        "now and with a peer of your choice (it need not be a member; it must share "
        "KVS_CLUSTER_SECRET; its node id is read from its /health first). Prints the exchange's "
        "report: messages, bytes, buckets, pulled, pushed and the seconds the exchange took."
    )

    def add_arguments(self, parser):
        parser.add_argument("peer_url", help="the peer's base URL, e.g. http://127.0.0.1:8002")
        parser.add_argument(
            "--timeout",
            type=float,
            default=settings.KVS_REPLICATION_TIMEOUT,
            help="seconds to wait for each answer (default KVS_REPLICATION_TIMEOUT)",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON line.")

    def handle(self, *args, **options):
        config = Config.from_settings()
        transport = HttpTransport(
            node_id=config.node_id, secret=config.secret, timeout_s=options["timeout"]
        )
        started = time.perf_counter()
        try:
            peer_id = node_id_at(options["peer_url"], timeout_s=options["timeout"])
            report = merkle_sync(transport, options["peer_url"], peer_id=peer_id)
        except TransportError as error:
            raise CommandError(f"anti-entropy failed: {error}") from None
        result = {**asdict(report), "seconds": round(time.perf_counter() - started, 4)}
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"{'equal' if report.equal else 'repaired'} in {result['seconds']} s: "
            f"{report.messages} messages, {report.bytes_sent} B sent, "
            f"{report.bytes_received} B received, {len(report.buckets)} buckets differed, "
            f"pulled {report.pulled}, pushed {report.pushed}"
        )
