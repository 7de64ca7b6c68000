"""What the `/api` and page fuzzing share: a small world of rows, per-example isolation, raw requests."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from django.db import transaction
from django.test import Client
from hypothesis import strategies as st

from accounts.models import User
from accounts.services.users import user_access_token_reset
from billing.models import Log
from tests.factories import ChannelFactory, RedemptionFactory, TokenFactory, UserFactory
from tests.fuzz.strategies import EDGE_NUMBERS, encode, param_values


@dataclass
class ApiWorld:
    root: User
    staff: User
    alice: User
    token_id: int
    channel_id: int
    code_id: int
    clients: dict[str, Client]  # role -> a client signed in as that role ("anon": nobody)


def make_world(root: User) -> ApiWorld:
    """Root, an admin, a common user with a token and a log, a channel and a redemption code."""
    staff = UserFactory(username="staff", role=User.Role.ADMIN, email="staff@example.com")
    alice = UserFactory(username="alice", quota=1_000_000, email="alice@example.com")
    token = TokenFactory(user=alice, name="alice-key", remain_quota=500_000)
    channel = ChannelFactory(name="openai", base_url="http://127.0.0.1:9")  # refuses at once: no test waits
    code = RedemptionFactory(name="card", quota=10_000)
    Log.objects.create(user_id=alice.pk, type=Log.Type.CONSUME, username="alice", token_name="alice-key",
                       model_name="gpt-4o-mini", quota=42, content="model ratio 1")
    clients = {"anon": Client()}
    for role, user in (("root", root), ("staff", staff), ("alice", alice)):
        clients[role] = Client(headers={"Authorization": user.access_token or user_access_token_reset(user=user)})
    return ApiWorld(root=root, staff=staff, alice=alice, token_id=token.pk, channel_id=channel.pk, code_id=code.pk,
                    clients=clients)


@contextmanager
def isolated_example():
    """Each example starts from the same rows, limits and options: what one wrote is rolled back."""
    from django.core.cache import cache

    from oneapi_site import options

    cache.clear()  # the per-IP limits on sign-in would refuse every later example
    try:
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
    finally:
        options.snapshot.load({})  # an option an example set lives in the process, not only in the rows


def query_string(params: list[tuple[str, str]]) -> str:
    """Percent-encoded as a browser would, UTF-8 (lone surrogates too, as the bytes a hostile client sends)."""
    return "&".join(f"{quote(encode(k), safe='')}={quote(encode(v), safe='')}" for k, v in params)


@st.composite
def queries(draw, base: dict[str, str]) -> list[tuple[str, str]]:
    """The route's parameters, each kept, changed or left out, in any order, some twice, plus strangers."""
    params = []
    for name, value in base.items():
        choice = draw(st.integers(min_value=0, max_value=3))
        if choice == 0:
            continue
        params.append((name, value if choice == 1 else draw(param_values)))
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            params.append((name, draw(param_values)))
    params += draw(st.lists(st.tuples(st.text(max_size=8), param_values), max_size=2))
    return draw(st.permutations(params))


# Ids in a path: the URL pattern takes digits only, however many.
path_ids = st.one_of(st.sampled_from([n for n in EDGE_NUMBERS if n.isdigit()]),
                     st.integers(min_value=0, max_value=10**40).map(str), st.just("0" * 30 + "1"))
