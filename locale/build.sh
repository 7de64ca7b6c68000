#!/usr/bin/env bash
# Rebuilds locale/zh_Hans from the strings in the code and the translations in locale/fragments/*.po.
# A string with no translation in any fragment stays empty here, and tests/site/test_i18n.py fails on it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PO=locale/zh_Hans/LC_MESSAGES/django.po
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$PY manage.py makemessages -l zh_Hans --no-location --no-obsolete --ignore 'tests/*' --ignore 'bench/*' \
  --ignore 'data/*' --ignore 'staticfiles/*' --ignore '.venv/*' -v0
# makemessages guesses new strings from similar old ones and marks them fuzzy; a guess is not a translation.
msgattrib --clear-fuzzy --empty -o "$PO" "$PO"
msgcat --use-first locale/header.po locale/fragments/*.po -o "$tmp/known.po"
msgmerge -q --no-fuzzy-matching --no-location "$tmp/known.po" "$PO" -o "$tmp/merged.po"
# Keep our fixed header instead of makemessages' dated one, so rebuilding changes nothing when nothing changed.
{ cat locale/header.po; echo; awk 'BEGIN{h=1} h && /^$/ {h=0; next} !h' "$tmp/merged.po"; } > "$PO"
sed -i '/^#, fuzzy$/d' "$PO"
msgfmt --check --statistics -o "${PO%.po}.mo" "$PO"
