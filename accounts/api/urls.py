"""Routes of accounts under /api/ (one-api's router/api.go); a trailing slash is optional."""

from accounts.api import me, session, status, tokens, users, verification
from accounts.api import oauth as oauth_api
from oneapi_site.api import api_path

urlpatterns = [
    *api_path("status", status.StatusView.as_view()),
    *api_path("notice", status.NoticeView.as_view()),
    *api_path("about", status.AboutView.as_view()),
    *api_path("home_page_content", status.HomePageContentView.as_view()),
    *api_path("oauth/state", oauth_api.StateView.as_view()),
    *api_path("oauth/github", oauth_api.GitHubView.as_view()),
    *api_path("oauth/oidc", oauth_api.OidcView.as_view()),
    *api_path("user/login", session.LoginView.as_view()),
    *api_path("user/logout", session.LogoutView.as_view()),
    *api_path("user/register", session.RegisterView.as_view()),
    *api_path("verification", verification.VerificationView.as_view()),
    *api_path("reset_password", verification.ResetPasswordView.as_view()),
    *api_path("user/reset", verification.ResetView.as_view()),
    *api_path("user/self", me.SelfView.as_view()),
    *api_path("user/token", me.AccessTokenView.as_view()),
    *api_path("user/aff", me.AffCodeView.as_view()),
    *api_path("user/available_models", me.AvailableModelsView.as_view()),
    *api_path("user/topup", me.RedeemView.as_view()),
    *api_path("user/dashboard", me.DashboardView.as_view()),
    *api_path("user/search", users.UserSearchView.as_view()),
    *api_path("user/manage", users.UserManageView.as_view()),
    *api_path("user/<int:user_id>", users.UserDetailView.as_view()),
    *api_path("user", users.UsersView.as_view()),
    *api_path("token/search", tokens.TokenSearchView.as_view()),
    *api_path("token/<int:token_id>", tokens.TokenDetailView.as_view()),
    *api_path("token", tokens.TokensView.as_view()),
]
