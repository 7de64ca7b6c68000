"""Usernames unique in any case (users_username_ci_unique).

On SQLite and PostgreSQL two accounts may already differ only in case ("root" and "ROOT"). The oldest keeps
its name; each later one becomes `<name>_<id>` (a warning names both), so the constraint can be made.
"""

import logging

import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower

log = logging.getLogger("oneapi")
NAME_MAX = 64  # the column's length


def rename_case_twins(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    twins = (User.objects.annotate(key=Lower("username")).values("key").annotate(n=Count("id"))
             .filter(n__gt=1).values_list("key", flat=True))
    for key in list(twins):
        keeper, *others = User.objects.annotate(key=Lower("username")).filter(key=key).order_by("id")
        for user in others:
            suffix = f"_{user.pk}"
            name = user.username[:NAME_MAX - len(suffix)] + suffix
            while User.objects.filter(username__iexact=name).exists():
                suffix = "_" + suffix
                name = user.username[:NAME_MAX - len(suffix)] + suffix
            log.warning("username %r (id %s) differs from %r (id %s) only in case: renamed to %r",
                        user.username, user.pk, keeper.username, keeper.pk, name)
            User.objects.filter(pk=user.pk).update(username=name)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_verbose_names'),
    ]

    operations = [
        migrations.RunPython(rename_case_twins, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='user',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('username'),
                                               name='users_username_ci_unique',
                                               violation_error_message='This username is taken.'),
        ),
    ]
