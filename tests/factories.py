import factory

from accounts.models import Token, User
from billing.models import RedemptionCode
from oneapi_site.lib.keys import random_key, uuid_hex
from providers.models import Channel


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.LazyAttribute(lambda o: o.username)
    quota = 1_000_000
    aff_code = factory.LazyFunction(lambda: random_key(6))
    password = factory.PostGenerationMethodCall("set_password", "password123")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Token

    user = factory.SubFactory(UserFactory)
    key = factory.LazyFunction(lambda: random_key(48))
    name = factory.Sequence(lambda n: f"token{n}")
    remain_quota = 500_000


class ChannelFactory(factory.django.DjangoModelFactory):
    """A channel with its abilities; build through the service so routes exist."""

    class Meta:
        model = Channel

    type = 1
    name = factory.Sequence(lambda n: f"channel{n}")
    key = "sk-upstream-secret"
    models = "gpt-4o-mini,gpt-4o,text-embedding-3-small,gpt-3.5-turbo-instruct"
    group = "default"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from providers.services import channel_create

        return channel_create(**kwargs)[0]


class RedemptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RedemptionCode

    key = factory.LazyFunction(uuid_hex)
    name = "card"
    quota = 10_000
