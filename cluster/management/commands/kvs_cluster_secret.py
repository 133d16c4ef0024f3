"""Print the cluster secret, to hand it to a new node (pipe it; it is never logged)."""

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Print this node's KVS_CLUSTER_SECRET on stdout, for a new node's environment, e.g. "
        "`KVS_CLUSTER_SECRET=$(ssh old-node manage.py kvs_cluster_secret)`. "
        "Whoever can run this can impersonate any node: keep the output off terminals and logs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--env",
            action="store_true",
            help="Print `KVS_CLUSTER_SECRET=...`, a line for the new node's .env file.",
        )

    def handle(self, *args, **options):
        secret = settings.KVS_CLUSTER_SECRET
        self.stdout.write(f"KVS_CLUSTER_SECRET={secret}" if options["env"] else secret)
