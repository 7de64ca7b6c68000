"""Log contents in the reader's language.

Logs store their content as English text (one row serves every reader, and operators grep it); the few
sentences billing writes are recognised here and shown through the translation catalogue. Anything
else, such as a remark an administrator typed, is shown as stored.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

# The reasons user_signup_gifts writes; marked here so the catalogue carries them.
GIFT_REASONS = (
    gettext_noop("Welcome gift for a new user"),
    gettext_noop("Gift for signing up with an invitation code"),
    gettext_noop("Reward for inviting a user"),
)

_AMOUNT = r"(?P<amount>\$[\d.,]+|[\d,]+ quota)"
_PATTERNS = (
    (re.compile(rf"^Redeemed a code for {_AMOUNT}$"), lambda m: _("Redeemed a code for %(amount)s")),
    (re.compile(rf"^Top-up by an administrator: {_AMOUNT}(?P<note>.*)$", re.S),
     lambda m: _("Top-up by an administrator: %(amount)s") + m["note"]),
    (re.compile(r"^Quota changed(?: by (?P<who>\S+))? from (?P<old>\S+(?: quota)?) to (?P<new>\S+(?: quota)?)$"),
     lambda m: _("Quota changed by %(who)s from %(old)s to %(new)s") if m["who"]
     else _("Quota changed from %(old)s to %(new)s")),
    (re.compile(rf"^(?P<reason>{'|'.join(map(re.escape, GIFT_REASONS))}): {_AMOUNT}$"),
     lambda m: _("%(reason)s: %(amount)s")),
    (re.compile(r"^model ratio (?P<model>\S+) x group ratio (?P<group>\S+) x completion ratio (?P<completion>[^\s,]+)"
                r"(?P<cache>(?:, .+)?)$", re.S),
     lambda m: _("model ratio %(model)s × group ratio %(group)s × completion ratio %(completion)s")
     + _cache_prices(m["cache"])),
    (re.compile(r"^price per (?P<per>call|image) (?P<price>\$[\d.,]+) x group ratio (?P<group>[^\s,]+)"
                r"(?P<cache>(?:, .+)?)$", re.S),
     lambda m: (_("price per call %(price)s × group ratio %(group)s") if m["per"] == "call"
                else _("price per image %(price)s × group ratio %(group)s")) + _cache_prices(m["cache"])),
)

# The prices pricing.Quote.explain adds after the ratios: the user's ratio, the prompt's tier, and the prices of
# the parts the prompt and answer had (the vendor's cache, image and audio tokens).
_CACHE_PRICES = (
    (re.compile(r"^cache read ratio (?P<ratio>\S+)$"), lambda m: _("cache read ratio %(ratio)s")),
    (re.compile(r"^cache write ratio (?P<ratio>\S+)$"), lambda m: _("cache write ratio %(ratio)s")),
    (re.compile(r"^1-hour cache write ratio (?P<ratio>\S+)$"), lambda m: _("1-hour cache write ratio %(ratio)s")),
    (re.compile(r"^user ratio (?P<ratio>\S+)$"), lambda m: _("user ratio %(ratio)s")),
    (re.compile(r"^prompt tier from (?P<low>\d+) tokens$"), lambda m: _("prompt tier from %(low)s tokens")),
    (re.compile(r"^prompt tier (?P<low>\d+) to (?P<high>\d+) tokens$"),
     lambda m: _("prompt tier %(low)s to %(high)s tokens")),
    (re.compile(r"^image input ratio (?P<ratio>\S+) \((?P<tokens>\d+) tokens\)$"),
     lambda m: _("image input ratio %(ratio)s (%(tokens)s tokens)")),
    (re.compile(r"^audio input ratio (?P<ratio>\S+) \((?P<tokens>\d+) tokens\)$"),
     lambda m: _("audio input ratio %(ratio)s (%(tokens)s tokens)")),
    (re.compile(r"^audio output ratio (?P<ratio>\S+) \((?P<tokens>\d+) tokens\)$"),
     lambda m: _("audio output ratio %(ratio)s (%(tokens)s tokens)")),
)


def _cache_prices(text: str) -> str:
    parts = []
    for part in (text or "").split(", ")[1:]:
        for pattern, template in _CACHE_PRICES:
            match = pattern.match(part)
            if match:
                parts.append(template(match) % match.groupdict())
                break
        else:
            parts.append(part)
    # describe() formats the whole line again: a % in these parts must stay one.
    return "".join(_(", %(part)s") % {"part": part} for part in parts).replace("%", "%%")


# What providers.services and providers.health write when a channel is tested or switched automatically.
_CHANNEL_TEST = re.compile(r"^Channel #(?P<id>\d+) (?P<name>.*?) test with (?P<model>\S*) "
                           r"(?:(?P<passed>passed)|failed: (?P<error>.*))$", re.S)
_CHANNEL_SWITCH = re.compile(r"^Channel #(?P<id>\d+) (?P<name>.*?) was (?P<what>disabled|enabled again) "
                             r"automatically: (?P<reason>.*)$", re.S)
_SWITCH_REASONS = (
    (re.compile(r"^it passed a channel test$"), lambda m: _("it passed a channel test")),
    (re.compile(r"^the vendor refused the key: (?P<error>.*)$", re.S),
     lambda m: _("the vendor refused the key: %(error)s") % {"error": m["error"]}),
    (re.compile(r"^(?P<count>\d+) failures in a row, the last: (?P<error>.*)$", re.S),
     lambda m: _("%(count)s failures in a row, the last: %(error)s") % {"count": m["count"], "error": m["error"]}),
    (re.compile(r"^channel test: (?P<reason>.*)$", re.S),
     lambda m: _("channel test: %(reason)s") % {"reason": _switch_reason(m["reason"])}),
)


def _switch_reason(text: str) -> str:
    for pattern, template in _SWITCH_REASONS:
        match = pattern.match(text)
        if match:
            return template(match)
    return text


def _channel_event(content: str) -> str | None:
    match = _CHANNEL_TEST.match(content)
    if match:
        values = {"id": match["id"], "name": match["name"], "model": match["model"], "error": match["error"]}
        if match["passed"]:
            return _("Channel #%(id)s %(name)s test with %(model)s passed") % values
        return _("Channel #%(id)s %(name)s test with %(model)s failed: %(error)s") % values
    match = _CHANNEL_SWITCH.match(content)
    if match:
        values = {"id": match["id"], "name": match["name"], "reason": _switch_reason(match["reason"])}
        if match["what"] == "disabled":
            return _("Channel #%(id)s %(name)s was disabled automatically: %(reason)s") % values
        return _("Channel #%(id)s %(name)s was enabled again automatically: %(reason)s") % values
    return None


def _amount(text: str | None) -> str | None:
    if text and text.endswith(" quota"):
        return _("%(count)s quota") % {"count": text[:-len(" quota")]}
    return text


def describe(content: str) -> str:
    for pattern, template in _PATTERNS:
        match = pattern.match(content or "")
        if match:
            values = {key: _amount(value) for key, value in match.groupdict().items()}
            if values.get("reason"):
                values["reason"] = _(values["reason"])
            return template(match) % values
    if (content or "").startswith("Channel #"):
        return _channel_event(content) or content
    return content
