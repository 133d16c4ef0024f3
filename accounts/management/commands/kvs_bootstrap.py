"""First boot of a node: its identity, and on an empty node the root user and token."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.services import RootBootstrap, root_bootstrap
from cluster.node import local_node, node_syncing_set
from kv.selectors import store_state


class Command(BaseCommand):
    help = "Create this node's identity and, on first boot, the root superuser and token."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON line.")

    def handle(self, *args, **options):
        node = local_node()
        if settings.KVS_SEEDS:
            # A joining node gets users and tokens from the cluster. On an empty store it refuses
            # client writes (503, mode `syncing`) until its first anti-entropy round completes.
            if store_state().revision == 0:
                node_syncing_set(True)
            result = RootBootstrap(created=False)
        else:
            result = root_bootstrap()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "node_id": node.node_id,
                        "created": result.created,
                        "token": result.token,
                        "password": result.password,
                    }
                )
            )
            return
        self.stdout.write(f"node {node.node_id}")
        if result.created:
            self.stdout.write(f"root token: {result.token}")
            self.stdout.write(f"root password: {result.password}")
