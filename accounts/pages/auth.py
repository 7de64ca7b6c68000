"""Sign-in pages: home, log in and out, sign up, password reset, and root's forced password change."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import limits, selectors, turnstile, verification
from accounts.limits import critical_page
from accounts.pages.auth_forms import (
    ChangePasswordForm,
    LoginForm,
    RegisterForm,
    ResetRequestForm,
    SendCodeForm,
    SetPasswordForm,
    add_service_error,
)
from accounts.pages.redirects import local_url
from accounts.services.signup import user_signup
from accounts.services.users import user_password_set
from oneapi_site import options
from oneapi_site.lib.address import mail_address
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.markup import is_url

BACKEND = "django.contrib.auth.backends.ModelBackend"


def _turnstile_passed(request, form) -> bool:
    """Check the widget's token (when Turnstile asks for one); a refusal goes on top of the form."""
    try:
        turnstile.check(request, request.POST.get(turnstile.PAGE_FIELD, ""))
    except turnstile.TurnstileError as exc:
        form.add_error(None, str(exc))
        return False
    return True


def _next_param(request) -> str:
    """The `next` the visitor came with, when it points back into this site; else ""."""
    return local_url(request, request.POST.get("next") or request.GET.get("next"))


def home(request):
    content = (options.get("HomePageContent") or "").strip()
    return render(request, "accounts/home.html", {
        "content": content,
        "content_is_url": is_url(content),
        "notice": (options.get("Notice") or "").strip(),
    })


@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("password")
@critical_page
def login_view(request):
    next_param = _next_param(request)
    if request.method == "GET" and request.user.is_authenticated:
        return redirect(next_param or "dashboard")
    enabled = bool(options.get("PasswordLoginEnabled"))
    form = LoginForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not enabled:
            form.add_error(None, _("Password login has been turned off by the administrator."))
        elif form.is_valid() and _turnstile_passed(request, form):
            account = form.cleaned_data["username"]
            if limits.account_locked(request, account) and not limits.human_check_lifts_lock(
                    request, request.POST.get(turnstile.PAGE_FIELD, "")):
                if not turnstile.enabled():
                    return limits.limited_page(request, account=True)
                # The widget again, whether or not this session passed it before: a check for this sign-in.
                form.add_error(None, limits.LOCKED_CHECK_MESSAGE)
                return render(request, "accounts/login.html", {
                    "form": form, "enabled": enabled, "next": next_param, **turnstile.widget_context()}, status=429)
            user = selectors.user_by_credentials(login=account, password=form.cleaned_data["password"])
            if user is None:
                limits.account_failed(request, account)
                form.add_error(None, _("Wrong username or password."))
            elif not user.is_active:
                form.add_error(None, _("This account has been disabled."))
            else:
                login(request, user, backend=BACKEND)
                response = redirect(next_param or "dashboard")
                limits.account_owner_proven(request, response, user)
                return response
    return render(request, "accounts/login.html", {"form": form, "enabled": enabled, "next": next_param,
                                                   **turnstile.page_context(request)})


@require_http_methods(["GET", "POST"])
def logout_view(request):
    """POST only logs out (a link or an image must not); GET asks first."""
    if request.method == "POST":
        logout(request)
        messages.success(request, _("You have logged out."))
        return redirect("home")
    return render(request, "accounts/logout.html")


def _register_open() -> bool:
    return bool(options.get("RegisterEnabled") and options.get("PasswordRegisterEnabled"))


@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("password", "password2")
@critical_page
def register(request):
    if not _register_open():
        return render(request, "accounts/register.html", {"closed": True},
                      status=403 if request.method == "POST" else 200)
    if request.method == "GET" and request.user.is_authenticated:
        return redirect("dashboard")
    email_verification = bool(options.get("EmailVerificationEnabled"))
    context: dict = {"email_verification": email_verification}
    if request.method == "POST" and email_verification and "send_code" in request.POST:
        # The "send code" button of the same form: mail the code, give the form back as typed.
        code_form = SendCodeForm(request.POST)
        if code_form.is_valid():
            try:
                turnstile.check(request, request.POST.get(turnstile.PAGE_FIELD, ""))
                verification.email_code_send(email=code_form.cleaned_data["email"])
            except (ServiceError, turnstile.TurnstileError) as exc:
                context["send_error"] = str(exc)
            else:
                messages.success(request, _("A verification code has been sent to %(email)s. It is valid for "
                                            "%(minutes)d minutes.")
                                 % {"email": code_form.cleaned_data["email"],
                                    "minutes": verification.CODE_TTL // 60})
        else:
            context["send_error"] = _("Enter a valid e-mail address.")
        typed = {name: request.POST.get(name, "") for name in ("username", "email", "aff_code")}
        form = RegisterForm(initial=typed, email_verification=True)
    elif request.method == "POST":
        form = RegisterForm(request.POST, email_verification=email_verification)
        if form.is_valid() and _turnstile_passed(request, form):
            data = form.cleaned_data
            try:
                user = user_signup(
                    username=data["username"], password=data["password"], email=data.get("email", ""),
                    verification_code=data.get("verification_code", ""), aff_code=data["aff_code"])
            except ServiceError as exc:
                add_service_error(form, exc)
            else:
                login(request, user, backend=BACKEND)
                messages.success(request, _("Welcome, %(name)s! Your account is ready.") % {"name": user.username})
                return redirect("dashboard")
    else:
        form = RegisterForm(initial={"aff_code": request.GET.get("aff", "")[:16]},
                            email_verification=email_verification)
    context["form"] = form
    return render(request, "accounts/register.html", {**context, **turnstile.page_context(request)})


@require_http_methods(["GET", "POST"])
@critical_page
def password_reset(request):
    """Ask for a reset link. The answer is the same whether or not the address has an account."""
    form = ResetRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid() and _turnstile_passed(request, form):
        try:
            verification.password_reset_send(email=form.cleaned_data["email"], link_base=mail_address(request))
        except ServiceError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, _("If an account uses this address, a link to choose a new password is on "
                                        "its way. It is valid for %(minutes)d minutes.")
                             % {"minutes": verification.RESET_TTL // 60})
            return redirect("login")
    return render(request, "accounts/password_reset.html", {"form": form, **turnstile.page_context(request)})


@require_http_methods(["GET", "POST"])
@sensitive_post_parameters()
@critical_page
def password_reset_confirm(request):
    """The link of the reset e-mail: choose a new password (one-api mails back a random one instead)."""
    source = request.POST if request.method == "POST" else request.GET
    email, token = source.get("email", ""), source.get("token", "")
    user = verification.password_reset_user(email=email, token=token)
    if user is None:
        return render(request, "accounts/password_reset_confirm.html", {"invalid": True})
    form = SetPasswordForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            verification.password_reset_complete(email=email, token=token,
                                                 password=form.cleaned_data["new_password1"])
        except ServiceError as exc:
            if exc.field == "token":
                return render(request, "accounts/password_reset_confirm.html", {"invalid": True})
            form.add_error("new_password1" if exc.field == "password" else None, str(exc))
        else:
            messages.success(request, _("Your password has been changed. Log in with the new one."))
            response = redirect("login")
            limits.account_owner_proven(request, response, user)  # the mailbox's owner: past a lock strangers keep
            return response
    return render(request, "accounts/password_reset_confirm.html", {"form": form, "email": email, "token": token})


@require_http_methods(["GET", "POST"])
@sensitive_post_parameters()
@login_required
@critical_page  # it asks for the current password, which a stolen session could guess at
def password_change_required(request):
    """Root's 123456 must go before anything else (DefaultPasswordMiddleware sends root here)."""
    next_param = _next_param(request)
    form = ChangePasswordForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_password_set(user=request.user, password=form.cleaned_data["new_password1"])
        except ServiceError as exc:
            form.add_error("new_password1" if exc.field == "password" else None, str(exc))
        else:
            update_session_auth_hash(request, user)  # changing the password must not log this browser out
            messages.success(request, _("Your password has been changed."))
            return redirect(next_param or "dashboard")
    return render(request, "accounts/password_change_required.html", {
        "form": form, "next": next_param, "forced": selectors.uses_default_password(request.user)})
