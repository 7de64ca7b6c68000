from pathlib import Path

from django.core.management.base import BaseCommand

from oneapi_site.config_file import config_export
from oneapi_site.config_file.document import dump
from oneapi_site.config_file.export import channels_left_out


class Command(BaseCommand):
    help = ("Write the channels, groups, prices and options as YAML, for import_config or CONFIG_FILE. Keys and "
            "secret options are left out unless --with-keys.")

    def add_arguments(self, parser):
        parser.add_argument("--with-keys", action="store_true",
                            help="include channel keys, secret channel settings and secret options")
        parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")

    def handle(self, *args, **opts):
        text = dump(config_export(with_keys=opts["with_keys"]))
        for channel, reason in channels_left_out():
            self.stderr.write(f'left out channel "{channel.name}" (type {channel.type}): {reason}')
        if opts["output"]:
            Path(opts["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"wrote {opts['output']}")
        else:
            self.stdout.write(text, ending="")
