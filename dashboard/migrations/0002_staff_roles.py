"""The staff roles (Viewer, Project manager, ML operator) as groups with their permissions."""

from django.db import migrations


def roles_create(apps, schema_editor):
    # The live models, not the historical ones: roles_sync is the one definition of the roles,
    # and it only touches auth's Group and Permission, whose shape Django keeps stable.
    from margin.roles import roles_sync

    roles_sync()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_create, migrations.RunPython.noop)]
