"""First boot of a node: its identity, and on an empty node the root user and token."""

import json

from django.core.management.base import BaseCommand

from accounts.services import root_bootstrap
from cluster.node import local_node


class Command(BaseCommand):
    help = "Create this node's identity and, on first boot, the root superuser and token."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON line.")

    def handle(self, *args, **options):
        node = local_node()
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
