from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.services.users import root_seed


class Command(BaseCommand):
    help = ("Create root (root/123456) if there are no users and apply INITIAL_ROOT_TOKEN / "
            "INITIAL_ROOT_ACCESS_TOKEN. Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("--root-token", default=settings.INITIAL_ROOT_TOKEN,
                            help="root's API token key (clients send sk-KEY); default INITIAL_ROOT_TOKEN")
        parser.add_argument("--root-access-token", default=settings.INITIAL_ROOT_ACCESS_TOKEN,
                            help="root's management access token; default INITIAL_ROOT_ACCESS_TOKEN")

    def handle(self, *args, **opts):
        root = root_seed(root_token=opts["root_token"], root_access_token=opts["root_access_token"])
        self.stdout.write(f"root user: {root.username} (id {root.pk})")
        if root.check_password("123456"):
            self.stdout.write(self.style.WARNING("root still has the default password 123456: change it"))
