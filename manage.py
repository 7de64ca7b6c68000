#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        if "MySQLdb" not in str(exc):
            raise
        sys.stderr.write("SQL_DSN names a MySQL/MariaDB database, and its driver is not installed: "
                         "run make install-mysql (or pip install -r requirements-mysql.txt).\n")
        sys.exit(1)
    except OperationalError as exc:
        # A database that is missing or down is the operator's to fix: say what and how, not where it broke.
        from oneapi_site.config import database_problem

        sys.stderr.write(database_problem(exc) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
