from django.core.management.base import BaseCommand, CommandError

from billing import retention
from oneapi_site import options


class Command(BaseCommand):
    help = ("Delete logs older than --days (default: the LogRetentionDays option) in batches, as the daily "
            "prune does; refuses to run while another prune runs.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="keep this many days; default LogRetentionDays")
        parser.add_argument("--batch", type=int, default=5000, help="rows per DELETE")

    def handle(self, *args, **opts):
        days, batch = opts["days"], opts["batch"]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        # A process of its own: nothing has read the stored options yet, and LogRetentionDays would be its default.
        options.reload_from_db()
        deleted = retention.logs_prune_run(days=days, batch=batch)
        if deleted is None:
            raise CommandError("another prune is running; try again when it has finished")
        if deleted == 0 and days is None and not options.get("LogRetentionDays"):
            self.stdout.write("LogRetentionDays is 0: logs are kept for ever; pass --days to prune anyway")
            return
        self.stdout.write(f"{deleted} logs deleted")
