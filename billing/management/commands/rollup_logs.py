import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from billing import rollup
from oneapi_site.lib.timeutil import now_ts


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not a day (YYYY-MM-DD): {text!r}") from None


class Command(BaseCommand):
    help = ("Recount the daily usage roll-up (the operator dashboard's figures) from the consume logs of the "
            "days from --since up to, not including, --until (default today, which the ledger is still writing).")

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="first day, YYYY-MM-DD (site time zone)")
        parser.add_argument("--until", default=None, help="day to stop before, YYYY-MM-DD; default today")

    def handle(self, *args, **opts):
        since = _day(opts["since"])
        until = _day(opts["until"]) if opts["until"] else rollup.local_day(now_ts())
        if until <= since:
            raise CommandError("--until must come after --since")
        rows = rollup.rollup_rebuild(since=since, until=until)
        self.stdout.write(f"{rows} roll-up rows written for {since} to {until - dt.timedelta(days=1)}")
