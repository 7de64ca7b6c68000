from django.core.management.base import BaseCommand, CommandError

from oneapi_site.config_file import ConfigFileError, config_import


class Command(BaseCommand):
    help = ("Apply a YAML file made by export_config: channels matched by name and type (added or changed; kept "
            "when not in the file unless --prune), groups, prices and options. All of it or nothing; prints what "
            "changed, and \"no changes\" when the database already matches.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="say what would change and write nothing")
        parser.add_argument("--prune", action="store_true",
                            help="remove the stored channels the file does not name (when it has a channels section)")

    def handle(self, *args, **opts):
        try:
            result = config_import(path=opts["file"], dry_run=opts["dry_run"], prune=opts["prune"])
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from None
        for line in result.lines:
            self.stdout.write(line)
        self.stdout.write(result.summary())
