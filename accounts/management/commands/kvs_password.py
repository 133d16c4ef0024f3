"""Set a user's password from the node's own machine: the way back in when it is lost."""

import secrets
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import ROOT_USERNAME, user_update
from kvsite.exceptions import KvsError


class Command(BaseCommand):
    help = (
        "Give a user a new password (a random one, printed, unless --stdin). It replicates to "
        "every node like any account change, and voids the user's JWTs."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", default=ROOT_USERNAME)
        parser.add_argument(
            "--stdin", action="store_true", help="Read the new password from standard input."
        )

    def handle(self, *args, username: str, stdin: bool, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r} on this node.")
        password = sys.stdin.readline().rstrip("\n") if stdin else secrets.token_urlsafe(12)
        try:
            user_update(user=user, password=password)
        except KvsError as error:
            raise CommandError(error.detail) from None
        if stdin:
            self.stdout.write(f"password of {username} changed")
        else:
            self.stdout.write(f"new password of {username}: {password}")
