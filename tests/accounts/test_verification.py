"""E-mail codes, reset links and the sign-up rules, as services (accounts.verification, accounts.services.signup)."""

import re
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.core.cache import cache

from accounts import verification
from accounts.models import Token, User
from accounts.services.signup import user_signup
from billing.models import Log
from billing.services import option_set
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.timeutil import now_ts
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def later(seconds):
    """Patch the clock the codes and links are checked against."""
    return mock.patch("accounts.verification.now_ts", return_value=now_ts() + seconds)


def sent_code(email="new@example.com"):
    verification.email_code_send(email=email)
    return re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)


def sent_reset_link():
    return urlsplit(re.search(r"(\S+/user/reset/\?\S+)", mail.outbox[-1].body).group(1))


def link_params(link):
    query = parse_qs(link.query)
    return query["email"][0], query["token"][0]


# --- Verification codes --------------------------------------------------------------

def test_a_code_is_six_digits_mailed_to_the_address():
    code = sent_code("Someone@Example.com")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["someone@example.com"]
    assert len(code) == 6
    verification.email_code_check(email="someone@example.com", code=code)


def test_a_code_expires_after_ten_minutes():
    code = sent_code()
    with later(9 * 60):
        verification.email_code_check(email="new@example.com", code=code)
    with later(10 * 60 + 1), pytest.raises(ServiceError) as exc:
        verification.email_code_check(email="new@example.com", code=code)
    assert exc.value.field == "verification_code"


def test_a_code_is_used_once():
    code = sent_code()
    verification.email_code_consume(email="new@example.com", code=code)
    with pytest.raises(ServiceError):
        verification.email_code_consume(email="new@example.com", code=code)


def test_a_code_belongs_to_its_address():
    code = sent_code("new@example.com")
    with pytest.raises(ServiceError):
        verification.email_code_check(email="other@example.com", code=code)


def test_five_wrong_guesses_drop_the_code():
    code = sent_code()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(verification.CODE_MAX_ATTEMPTS):
        with pytest.raises(ServiceError):
            verification.email_code_check(email="new@example.com", code=wrong)
    with pytest.raises(ServiceError):
        verification.email_code_check(email="new@example.com", code=code)


def test_parallel_wrong_guesses_each_count(monkeypatch):
    """Guesses racing each other must not all read the same count: five at once still drop the code."""
    import threading

    code = sent_code()
    wrong = "000000" if code != "000000" else "111111"
    n = verification.CODE_MAX_ATTEMPTS
    barrier = threading.Barrier(n, timeout=5)
    real_get = cache.get

    class RacingCache:
        """Every guess reads the code's record before any of them goes on: the worst interleaving."""

        def get(self, key, *args, **kwargs):
            value = real_get(key, *args, **kwargs)
            if key == verification._code_key("new@example.com"):
                barrier.wait()
            return value

        def __getattr__(self, name):
            return getattr(cache, name)

    monkeypatch.setattr(verification, "cache", RacingCache())
    refused = []

    def guess():
        try:
            verification.email_code_check(email="new@example.com", code=wrong)
        except ServiceError:
            refused.append(1)

    threads = [threading.Thread(target=guess) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert len(refused) == n
    with pytest.raises(ServiceError):
        verification.email_code_check(email="new@example.com", code=code)


def test_the_right_code_checked_twice_after_four_typos_still_signs_up():
    """user_signup checks the code, then takes it: a right code is not counted as a guess."""
    code = sent_code()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(verification.CODE_MAX_ATTEMPTS - 1):
        with pytest.raises(ServiceError):
            verification.email_code_check(email="new@example.com", code=wrong)
    verification.email_code_check(email="new@example.com", code=code)
    verification.email_code_consume(email="new@example.com", code=code)


def test_a_new_code_replaces_the_old_one():
    first = sent_code()
    second = sent_code()
    verification.email_code_check(email="new@example.com", code=second)
    if first != second:
        with pytest.raises(ServiceError):
            verification.email_code_check(email="new@example.com", code=first)


def test_no_code_for_an_address_in_use():
    UserFactory(email="taken@example.com")
    with pytest.raises(ServiceError) as exc:
        verification.email_code_send(email="TAKEN@example.com")
    assert exc.value.field == "email" and "in use" in str(exc.value)
    assert mail.outbox == []


@pytest.mark.parametrize("email", ["", "not-an-address", "a@b@c"])
def test_no_code_for_a_malformed_address(email):
    with pytest.raises(ServiceError) as exc:
        verification.email_code_send(email=email)
    assert exc.value.field == "email"


def test_the_domain_whitelist_applies_only_when_restriction_is_on():
    option_set(key="EmailDomainWhitelist", value="good.example, Other.example")
    sent_code("a@bad.example")  # restriction off: any domain
    option_set(key="EmailDomainRestrictionEnabled", value="true")
    with pytest.raises(ServiceError) as exc:
        verification.email_code_send(email="b@bad.example")
    assert "good.example" in str(exc.value)
    with pytest.raises(ServiceError):
        verification.email_code_send(email="c@sub.good.example")
    sent_code("d@GOOD.example")
    sent_code("e@other.example")
    assert len(mail.outbox) == 3


def test_without_smtp_nothing_is_promised(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    with pytest.raises(ServiceError) as exc:
        verification.email_code_send(email="new@example.com")
    assert "SMTP" in str(exc.value)


def test_a_failed_mail_keeps_no_code():
    with mock.patch("accounts.verification.mail_send", return_value=False) as send:
        with pytest.raises(ServiceError):
            verification.email_code_send(email="new@example.com")
    code = re.search(r"\b(\d{6})\b", send.call_args.kwargs["body"]).group(1)
    with pytest.raises(ServiceError):
        verification.email_code_check(email="new@example.com", code=code)


# --- Password reset links ------------------------------------------------------------

def test_a_reset_link_goes_to_the_server_address(alice):
    alice.email = "alice@example.com"
    alice.save()
    option_set(key="ServerAddress", value="https://gw.example.com/")
    verification.password_reset_send(email="Alice@Example.com")
    link = sent_reset_link()
    assert (link.scheme, link.netloc, link.path) == ("https", "gw.example.com", "/user/reset/")
    email, token = link_params(link)
    assert email == "alice@example.com" and re.fullmatch(r"[0-9a-f]{32}", token)
    assert verification.password_reset_user(email=email, token=token) == alice


def test_an_unknown_or_disabled_address_gets_no_mail_and_no_error():
    UserFactory(email="off@example.com", status=User.Status.DISABLED)
    verification.password_reset_send(email="nobody@example.com")
    verification.password_reset_send(email="off@example.com")
    assert mail.outbox == []


def test_a_reset_link_works_once_and_for_ten_minutes(alice):
    alice.email = "alice@example.com"
    alice.save()
    verification.password_reset_send(email="alice@example.com")
    email, token = link_params(sent_reset_link())
    with later(10 * 60 + 1):
        assert verification.password_reset_user(email=email, token=token) is None
        with pytest.raises(ServiceError):
            verification.password_reset_complete(email=email, token=token)
    password = verification.password_reset_complete(email=email, token=token)
    assert len(password) == 12
    alice.refresh_from_db()
    assert alice.check_password(password)
    with pytest.raises(ServiceError) as exc:
        verification.password_reset_complete(email=email, token=token)
    assert exc.value.field == "token"


def test_a_wrong_token_does_nothing(alice):
    alice.email = "alice@example.com"
    alice.save()
    verification.password_reset_send(email="alice@example.com")
    email, token = link_params(sent_reset_link())
    with pytest.raises(ServiceError):
        verification.password_reset_complete(email=email, token="0" * 32)
    with pytest.raises(ServiceError):
        verification.password_reset_complete(email="bob@example.com", token=token)
    assert verification.password_reset_user(email=email, token=token) == alice


def test_a_weak_chosen_password_keeps_the_link(alice):
    alice.email = "alice@example.com"
    alice.save()
    verification.password_reset_send(email="alice@example.com")
    email, token = link_params(sent_reset_link())
    with pytest.raises(ServiceError) as exc:
        verification.password_reset_complete(email=email, token=token, password="password")
    assert exc.value.field == "password"
    verification.password_reset_complete(email=email, token=token, password="a-fresh-Secret9")
    alice.refresh_from_db()
    assert alice.check_password("a-fresh-Secret9")


# --- Sign-up rules ---------------------------------------------------------------------

def test_signup_needs_both_registration_switches():
    option_set(key="RegisterEnabled", value="false")
    with pytest.raises(ServiceError, match="turned off"):
        user_signup(username="erin", password="s3cret-pass")
    option_set(key="RegisterEnabled", value="true")
    option_set(key="PasswordRegisterEnabled", value="false")
    with pytest.raises(ServiceError, match="turned off"):
        user_signup(username="erin", password="s3cret-pass")
    assert not User.objects.filter(username="erin").exists()


@pytest.mark.parametrize("password", ["123456", "short", "password", "12345678", "a" * 21])
def test_signup_applies_the_password_rules(password):
    with pytest.raises(ServiceError) as exc:
        user_signup(username="erin", password=password)
    assert exc.value.field == "password"
    assert not User.objects.filter(username="erin").exists()


def test_signup_gives_the_new_user_gift_with_a_log_and_a_default_token():
    option_set(key="QuotaForNewUser", value="5000")
    user = user_signup(username="erin", password="s3cret-pass")
    assert user.quota == 5000 and user.inviter_id == 0
    gift = Log.objects.get(user_id=user.pk)
    assert gift.type == Log.Type.SYSTEM and gift.quota == 5000
    token = Token.objects.get(user=user)
    assert token.name == "default" and token.unlimited_quota


def test_signup_with_an_invitation_rewards_both_and_logs_each(alice):
    option_set(key="QuotaForNewUser", value="100")
    option_set(key="QuotaForInvitee", value="300")
    option_set(key="QuotaForInviter", value="700")
    user = user_signup(username="frank", password="s3cret-pass", aff_code=alice.aff_code)
    assert user.inviter_id == alice.pk and user.quota == 400
    alice.refresh_from_db()
    assert alice.quota == 1_000_000 + 700
    assert sorted(Log.objects.filter(user_id=user.pk, type=Log.Type.SYSTEM).values_list("quota", flat=True)) == [100,
                                                                                                                300]
    assert list(Log.objects.filter(user_id=alice.pk, type=Log.Type.SYSTEM).values_list("quota", flat=True)) == [700]


def test_signup_without_gifts_logs_nothing_and_ignores_an_unknown_invitation():
    user = user_signup(username="gina", password="s3cret-pass", aff_code="nope")
    assert user.quota == 0 and user.inviter_id == 0
    assert not Log.objects.exists()


def test_signup_without_verification_keeps_no_email():
    user = user_signup(username="hank", password="s3cret-pass", email="claimed@example.com")
    assert user.email == ""


def test_signup_with_verification_needs_the_code_and_uses_it_up():
    option_set(key="EmailVerificationEnabled", value="true")
    with pytest.raises(ServiceError) as exc:
        user_signup(username="ivan", password="s3cret-pass")
    assert exc.value.field == "email"
    code = sent_code("ivan@example.com")
    with pytest.raises(ServiceError) as exc:
        user_signup(username="ivan", password="s3cret-pass", email="ivan@example.com")
    assert exc.value.field == "verification_code"
    with pytest.raises(ServiceError) as exc:
        user_signup(username="ivan", password="s3cret-pass", email="ivan@example.com",
                    verification_code="x" + code[1:])
    assert exc.value.field == "verification_code"
    user = user_signup(username="ivan", password="s3cret-pass", email="Ivan@example.com", verification_code=code)
    assert user.email == "ivan@example.com"
    with pytest.raises(ServiceError):
        verification.email_code_check(email="ivan@example.com", code=code)


def test_a_refused_signup_keeps_the_code():
    option_set(key="EmailVerificationEnabled", value="true")
    code = sent_code("ivan@example.com")
    with pytest.raises(ServiceError):
        user_signup(username="ivan", password="password", email="ivan@example.com", verification_code=code)
    user_signup(username="ivan", password="s3cret-pass", email="ivan@example.com", verification_code=code)


def test_a_code_taken_by_a_racing_request_undoes_the_account():
    option_set(key="EmailVerificationEnabled", value="true")
    code = sent_code("ivan@example.com")
    real_check = verification.email_code_check

    def check_then_lose_the_race(*, email, code):
        real_check(email=email, code=code)
        cache.delete(verification._code_key(email))  # the other request takes the code here

    with mock.patch("accounts.verification.email_code_check", side_effect=check_then_lose_the_race):
        with pytest.raises(ServiceError):
            user_signup(username="ivan", password="s3cret-pass", email="ivan@example.com", verification_code=code)
    assert not User.objects.filter(username="ivan").exists()
