"""Self-service pages of accounts: sign-in and sign-up, tokens, personal settings, the operator's About and Chat."""

from django.urls import path

from accounts.pages import auth, content, oauth, profile, tokens

urlpatterns = [
    path("", auth.home, name="home"),
    path("about/", content.about, name="about"),
    path("chat/", content.chat, name="chat"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("register/", auth.register, name="register"),
    path("reset/", auth.password_reset, name="password_reset"),
    path("user/reset/", auth.password_reset_confirm, name="password_reset_confirm"),
    path("password/change/", auth.password_change_required, name="password_change_required"),
    path("oauth/<str:provider>/", oauth.oauth_start, name="oauth_start"),
    path("oauth/<str:provider>/callback/", oauth.oauth_callback, name="oauth_callback"),
    path("token/", tokens.token_list, name="tokens"),
    path("token/new/", tokens.token_create, name="token_create"),
    path("token/<int:token_id>/", tokens.token_edit, name="token_edit"),
    path("token/<int:token_id>/delete/", tokens.token_delete, name="token_delete"),
    path("token/<int:token_id>/status/", tokens.token_status, name="token_status"),
    path("setting/", profile.settings_view, name="settings"),
]
