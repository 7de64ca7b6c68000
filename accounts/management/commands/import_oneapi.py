import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from oneapi_site.importer.run import import_database
from oneapi_site.importer.source import SourceError, open_source


class Command(BaseCommand):
    help = ("Import a one-api or new-api database: users (with their passwords), tokens (keys unchanged), "
            "channels, redemption codes, options and, with --logs, the logs. Run again to bring changes over.")

    def add_arguments(self, parser):
        parser.add_argument("source", help="one-api's SQL_DSN (user:pass@tcp(host:3306)/db), a postgres:// URL, "
                                           "or the path of its SQLite file")
        parser.add_argument("--dry-run", action="store_true", help="say what would be carried, write nothing")
        parser.add_argument("--logs", action="store_true", help="carry the logs too (in batches)")
        parser.add_argument("--log-source", default="", metavar="LOG_SQL_DSN",
                            help="read the logs from this database instead (one-api's LOG_SQL_DSN); implies --logs")

    def handle(self, *args, **opts):
        log_source = None
        try:
            source = open_source(opts["source"])
            if opts["log_source"]:
                log_source = open_source(opts["log_source"], required=("logs",))
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        try:
            report = import_database(source, dry_run=opts["dry_run"], logs=opts["logs"] or log_source is not None,
                                     log_source=log_source, progress=self._progress)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:  # the source's or ours: either way one line, never a traceback
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(f"the import stopped and wrote nothing of its current step: {detail}") from None
        finally:
            for opened in (source, log_source):
                if opened is not None:
                    opened.close()
        self.stdout.write("\n".join(report.lines()))

    _shown = -1

    def _progress(self, done: int, total: int) -> None:
        percent = min(done * 100 // total, 100) if total else 100
        if percent == self._shown and done < total:  # a line per percent at most, whatever the table's size
            return
        self._shown = percent
        line = f"logs: {done} of {total} ({percent}%)"
        if sys.stderr.isatty():  # one line redrawn on a terminal; a line each into a file
            self.stderr.write(f"\r{line}", ending="\n" if done >= total else "")
        else:
            self.stderr.write(line)
