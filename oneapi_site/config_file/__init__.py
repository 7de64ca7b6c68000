"""Configuration as code: the gateway's channels, groups, prices and options as one YAML file.

`manage.py export_config` writes it (document.py says what goes where), `manage.py import_config` and
`CONFIG_FILE` at start apply one (plan.py compares it with the database, apply.py writes the difference in one
transaction through the services, so validation and change notifications are the console's; startup.py takes
turns between instances started together). Channels are
matched by name and type; keys and secret options are written only when asked and kept when a file omits them.
"""

from oneapi_site.config_file.apply import ImportResult, config_import
from oneapi_site.config_file.document import ConfigFileError
from oneapi_site.config_file.export import config_export

__all__ = ["ConfigFileError", "ImportResult", "config_export", "config_import"]
