"""The first migrate creates root/123456, as one-api does on an empty users table."""

import secrets
import string

from django.contrib.auth.hashers import make_password
from django.db import migrations

from oneapi_site.lib.timeutil import now_ts


def create_root(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    if User.objects.exists():
        return
    User.objects.create(
        username="root", display_name="Root User", role=100, status=1, group="default",
        quota=500_000_000_000_000, password=make_password("123456"), created_time=now_ts(),
        aff_code="".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4)),
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create_root, migrations.RunPython.noop)]
