"""param_override in new-api's format, at unit level: each mode, conditions, the merge form, and the checks
made when a channel is saved."""

from __future__ import annotations

import pytest

from providers.param_override import OverrideInvalid, Refused, apply, compile_override

BODY = {
    "model": "gpt-4o",
    "temperature": 0.5,
    "max_tokens": 100,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Hello World  "}],
    "metadata": {"team": "ml"},
    "stream": False,
}


def run(*operations: dict, body: dict | None = None) -> dict:
    return apply(compile_override({"operations": list(operations)}), body or BODY)


@pytest.mark.parametrize(("operation", "path", "expected"), [
    ({"mode": "set", "path": "temperature", "value": 0.9}, "temperature", 0.9),
    ({"mode": "set", "path": "temperature", "value": 0.9, "keep_origin": True}, "temperature", 0.5),
    ({"mode": "set", "path": "top_p", "value": 1, "keep_origin": True}, "top_p", 1),
    ({"mode": "set", "path": "thinking.budget_tokens", "value": 1024}, "thinking", {"budget_tokens": 1024}),
    ({"mode": "set", "path": "messages.-1.name", "value": "u"}, "messages", [
        BODY["messages"][0], {**BODY["messages"][1], "name": "u"}]),
    ({"mode": "delete", "path": "max_tokens"}, "max_tokens", None),
    ({"mode": "delete", "path": "messages.0"}, "messages", [BODY["messages"][1]]),
    ({"mode": "append", "path": "messages.0.content", "value": " In French."}, "messages.0.content",
     "Be brief. In French."),
    ({"mode": "prepend", "path": "messages.0.content", "value": "Note: "}, "messages.0.content", "Note: Be brief."),
    ({"mode": "append", "path": "messages", "value": {"role": "user", "content": "x"}}, "messages",
     [*BODY["messages"], {"role": "user", "content": "x"}]),
    ({"mode": "prepend", "path": "messages", "value": [{"role": "system", "content": "a"}]}, "messages",
     [{"role": "system", "content": "a"}, *BODY["messages"]]),
    ({"mode": "append", "path": "metadata", "value": {"team": "other", "env": "prod"}, "keep_origin": True},
     "metadata", {"team": "ml", "env": "prod"}),
    ({"mode": "append", "path": "metadata", "value": {"team": "other"}}, "metadata", {"team": "other"}),
    ({"mode": "trim_prefix", "path": "model", "value": "gpt-"}, "model", "4o"),
    ({"mode": "trim_suffix", "path": "model", "value": "4o"}, "model", "gpt-"),
    ({"mode": "ensure_prefix", "path": "model", "value": "openai/"}, "model", "openai/gpt-4o"),
    ({"mode": "ensure_prefix", "path": "model", "value": "gpt-"}, "model", "gpt-4o"),
    ({"mode": "ensure_suffix", "path": "model", "value": "-latest"}, "model", "gpt-4o-latest"),
    ({"mode": "trim_space", "path": "messages.1.content"}, "messages.1.content", "Hello World"),
    ({"mode": "to_lower", "path": "messages.1.content"}, "messages.1.content", "  hello world  "),
    ({"mode": "to_upper", "path": "model"}, "model", "GPT-4O"),
    ({"mode": "replace", "path": "messages.1.content", "from": "World", "to": "there"}, "messages.1.content",
     "  Hello there  "),
    ({"mode": "regex_replace", "path": "model", "from": r"^gpt-(\w+)$", "to": "openai/$1"}, "model",
     "openai/4o"),
    ({"mode": "to_upper", "path": "messages.*.role"}, "messages", [
        {**BODY["messages"][0], "role": "SYSTEM"}, {**BODY["messages"][1], "role": "USER"}]),
])
def test_each_mode_edits_the_body_as_new_api_does(operation, path, expected):
    result = run(operation)
    node = result
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node.get(part)
    assert node == expected


def test_move_and_copy_take_the_value_from_one_path_to_another():
    result = run({"mode": "move", "from": "messages.0.content", "to": "system"},
                 {"mode": "copy", "from": "metadata.team", "to": "user"})
    assert result["system"] == "Be brief." and "content" not in result["messages"][0]
    assert result["user"] == "ml" and result["metadata"] == {"team": "ml"}


def test_operations_on_missing_paths_or_other_kinds_leave_the_body_as_it_was():
    result = run({"mode": "delete", "path": "nothing.here"}, {"mode": "to_upper", "path": "temperature"},
                 {"mode": "append", "path": "temperature", "value": 1},
                 {"mode": "move", "from": "absent", "to": "elsewhere"})
    assert result == BODY


def test_the_callers_body_is_never_edited_in_place():
    body = {"messages": [{"role": "user", "content": "hi"}], "metadata": {"a": 1}}
    run({"mode": "append", "path": "messages.0.content", "value": "!"}, {"mode": "set", "path": "metadata.a",
                                                                           "value": 2}, body=body)
    assert body == {"messages": [{"role": "user", "content": "hi"}], "metadata": {"a": 1}}


@pytest.mark.parametrize(("conditions", "logic", "applies"), [
    ([{"path": "model", "mode": "full", "value": "gpt-4o"}], None, True),
    ([{"path": "model", "mode": "full", "value": "gpt-4"}], None, False),
    ([{"path": "model", "mode": "prefix", "value": "gpt"}], None, True),
    ([{"path": "model", "mode": "suffix", "value": "4o"}], None, True),
    ([{"path": "messages.1.content", "mode": "contains", "value": "World"}], None, True),
    ([{"path": "temperature", "mode": "gt", "value": 0.5}], None, False),
    ([{"path": "temperature", "mode": "gte", "value": 0.5}], None, True),
    ([{"path": "max_tokens", "mode": "lt", "value": 101}], None, True),
    ([{"path": "max_tokens", "mode": "lte", "value": 99}], None, False),
    ([{"path": "stream", "mode": "full", "value": False}], None, True),
    ([{"path": "model", "mode": "prefix", "value": "gpt", "invert": True}], None, False),
    ([{"path": "absent", "mode": "full", "value": 1}], None, False),
    ([{"path": "absent", "mode": "full", "value": 1, "pass_missing_key": True}], None, True),
    ([{"path": "model", "mode": "prefix", "value": "claude"}, {"path": "stream", "mode": "full", "value": False}],
     None, True),  # OR by default
    ([{"path": "model", "mode": "prefix", "value": "claude"}, {"path": "stream", "mode": "full", "value": False}],
     "AND", False),
    ([{"path": "model", "mode": "prefix", "value": "gpt"}, {"path": "stream", "mode": "full", "value": False}],
     "AND", True),
])
def test_conditions_decide_whether_an_operation_runs(conditions, logic, applies):
    operation = {"mode": "set", "path": "marked", "value": True, "conditions": conditions}
    if logic:
        operation["logic"] = logic
    assert ("marked" in run(operation)) is applies


def test_the_plain_object_form_replaces_the_bodys_top_level_keys():
    result = apply(compile_override({"temperature": 1.2, "metadata": {"env": "prod"}}), BODY)
    assert result["temperature"] == 1.2 and result["metadata"] == {"env": "prod"}
    assert result["messages"] == BODY["messages"]


def test_new_apis_json_text_is_read_like_the_object():
    assert apply(compile_override('{"operations": [{"mode": "delete", "path": "stream"}]}'), BODY).get(
        "stream", "gone") == "gone"


def test_return_error_refuses_the_request_when_its_conditions_hold():
    override = compile_override({"operations": [
        {"mode": "return_error", "value": {"message": "No o1 here.", "status_code": 403},
         "conditions": [{"path": "model", "mode": "prefix", "value": "o1"}]}]})
    assert apply(override, BODY)["model"] == "gpt-4o"
    with pytest.raises(Refused) as refused:
        apply(override, {**BODY, "model": "o1-mini"})
    assert (refused.value.refusal.status, refused.value.refusal.message) == (403, "No o1 here.")


def test_pass_stops_the_operations_that_follow():
    result = run({"mode": "set", "path": "a", "value": 1}, {"mode": "pass"}, {"mode": "set", "path": "b", "value": 2})
    assert result["a"] == 1 and "b" not in result


@pytest.mark.parametrize(("override", "message"), [
    ("{not json", "not valid JSON"),
    ([1, 2], "must be a JSON object"),
    ({"operations": {"mode": "set"}}, "must be a list"),
    ({"operations": [{"mode": "explode", "path": "a"}]}, "unknown mode 'explode'"),
    ({"operations": [{"path": "a"}]}, "unknown mode None"),
    ({"operations": [{"mode": "set", "value": 1}]}, "set needs a path"),
    ({"operations": [{"mode": "set", "path": "a"}]}, "set needs a value"),
    ({"operations": [{"mode": "move", "from": "a"}]}, "move needs from and to"),
    ({"operations": [{"mode": "regex_replace", "path": "a", "from": "(", "to": ""}]}, "not a regular expression"),
    ({"operations": [{"mode": "trim_prefix", "path": "a", "value": 3}]}, "needs a string value"),
    ({"operations": [{"mode": "set", "path": "a", "value": 1, "logic": "XOR"}]}, "logic must be AND or OR"),
    ({"operations": [{"mode": "set", "path": "a", "value": 1, "conditions": [{"path": "a", "mode": "near"}]}]},
     "unknown mode 'near'"),
    ({"operations": [{"mode": "set", "path": "a", "value": 1,
                      "conditions": [{"path": "a", "mode": "gt", "value": "5"}]}]}, "compares with a number"),
    ({"operations": [{"mode": "return_error", "value": {"message": "x", "status_code": 200}}]},
     "HTTP error status"),
])
def test_an_override_that_cannot_apply_is_refused_with_what_is_wrong(override, message):
    with pytest.raises(OverrideInvalid, match=message.replace("(", r"\(")):
        compile_override(override)
