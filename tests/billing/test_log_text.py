"""Log contents written by billing read in the reader's language; anything else is left as stored."""

import pytest
from django.utils import translation

from billing.log_text import describe


@pytest.mark.parametrize("stored,chinese", [
    ("Redeemed a code for $0.002", "使用兑换码充值 $0.002"),
    ("Top-up by an administrator: $5 (refund #12)", "管理员充值 $5 (refund #12)"),
    ("Quota changed by root from $1 to $2", "root 将额度从 $1 调整为 $2"),
    ("Quota changed from 100 quota to 50 quota", "额度从 100 额度 调整为 50 额度"),
    ("Welcome gift for a new user: $0.5", "新用户赠送: $0.5"),
    ("model ratio 0.075 x group ratio 1 x completion ratio 4", "模型倍率 0.075 × 分组倍率 1 × 补全倍率 4"),
    ("something an operator typed", "something an operator typed"),
])
def test_known_sentences_are_translated(stored, chinese):
    with translation.override("zh-hans"):
        assert describe(stored) == chinese
    with translation.override("en"):
        assert describe(stored).replace("×", "x") == stored
