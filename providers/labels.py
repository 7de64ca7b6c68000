"""Channel type names in the reader's language.

Each adapter keeps one English `label` (providers/adapters/*); the console shows it through the
catalogue. The names with a usual Chinese rendering are marked below so the catalogue carries them;
any other label (a brand such as "OpenAI" or "Groq") is shown as the adapter spells it.
"""

from __future__ import annotations

from django.utils.translation import gettext, gettext_noop

from providers.adapters import ADAPTERS

TRANSLATED_TYPE_LABELS = (
    gettext_noop("Custom"),
    gettext_noop("Baidu Wenxin (Qianfan v1)"),
    gettext_noop("Baidu Qianfan v2"),
    gettext_noop("Zhipu GLM"),
    gettext_noop("Alibaba DashScope"),
    gettext_noop("Alibaba Bailian (OpenAI-compatible)"),
    gettext_noop("Xunfei Spark"),
    gettext_noop("Xunfei Spark (HTTP)"),
    gettext_noop("Tencent Hunyuan"),
    gettext_noop("StepFun"),
    gettext_noop("Doubao"),
    gettext_noop("SiliconFlow"),
    gettext_noop("OpenAI-compatible"),
    gettext_noop("Google Gemini (OpenAI-compatible)"),
    gettext_noop("360 AI Brain"),
    gettext_noop("Baichuan"),
    gettext_noop("LingYiWanWu"),
    gettext_noop("Google PaLM (via Gemini)"),
    gettext_noop("AIProxy Library"),
    gettext_noop("Proxy"),
)


def type_label(type_id: int | None) -> str:
    adapter = ADAPTERS.get(type_id)
    if adapter is None:
        return gettext("unknown (%(type)s)") % {"type": type_id}
    return gettext(adapter.label) if adapter.label else adapter.label


def unsupported_reason(type_id: int | None) -> str:
    """Why a channel of this type is kept out of routing ("" when its type has an adapter): a channel imported
    from one-api or new-api, or written into the table, may carry a type this gateway cannot speak."""
    if type_id in ADAPTERS:
        return ""
    return gettext("Channel type %(type)s has no adapter in this gateway: the channel is kept out of routing. "
                   "Change its type to a supported one, or delete it.") % {"type": type_id}


def unsupported_type_refusal(type_id: object) -> str:
    """The refusal of a save that would leave a channel with a type no adapter serves."""
    return gettext("Channel type %(type)s is not supported: no adapter serves it, so a channel of it could "
                   "never route. Choose one of the listed types.") % {"type": type_id}


def type_choices() -> list[tuple[int, str]]:
    """The channel type choices of the form, named in the active language."""
    return [(type_id, f"{type_label(type_id)} ({type_id})") for type_id in sorted(ADAPTERS)]
