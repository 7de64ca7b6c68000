"""`manage.py import_oneapi`: one-api's (or new-api's) database into this gateway's (source.py reads it,
mapping.py turns rows into our fields, run.py plans and writes, report.py says what happened)."""
