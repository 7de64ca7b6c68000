from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services.tokens import token_create
from oneapi_site.lib.errors import ServiceError


class Command(BaseCommand):
    help = "Create an API token for a user and print it as sk-KEY."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--quota", type=int, default=None, help="remaining quota; unlimited when omitted")
        parser.add_argument("--key", default=None, help="use this key (without sk-) instead of a random one")

    def handle(self, *args, **opts):
        user = User.objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"no user named {opts['username']!r}")
        key = (opts["key"] or "").removeprefix("sk-") or None
        quota = opts["quota"]
        try:
            token = token_create(user=user, name=opts["name"], key=key, remain_quota=quota or 0,
                                 unlimited_quota=quota is None)
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"sk-{token.key}")
