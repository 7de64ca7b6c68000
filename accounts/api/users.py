"""Admin routes over users: /api/user/, /search, /{id}, /manage."""

from __future__ import annotations

from rest_framework.views import APIView

from accounts import permissions, selectors
from accounts.api.authentication import IsAdmin
from accounts.api.serializers import UserCreateInput, UserManageInput, UserUpdateInput, user_json
from accounts.models import User
from accounts.services.signup import user_register
from accounts.services.users import user_delete, user_manage, user_update
from oneapi_site.api import SEARCH_LIMIT, fail, ok, page_window

NOT_FOUND = "user not found"


def _live_user(**lookup) -> User | None:
    return User.objects.exclude(status=User.Status.DELETED).filter(**lookup).first()


class AdminView(APIView):
    permission_classes = [IsAdmin]


class UsersView(AdminView):
    def get(self, request):
        offset, limit = page_window(request)
        users = selectors.user_list(offset=offset, limit=limit, order=request.query_params.get("order", ""))
        return ok([user_json(u) for u in users])

    def post(self, request):
        body = UserCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data["role"] not in User.Role.values:
            return fail("role must be 1 (common), 10 (admin) or 100 (root)", field="role")
        if not permissions.role_can_give(request.user, data["role"]):
            return fail("you cannot create a user with a role equal to or above yours", field="role")
        user = user_register(username=data["username"], password=data["password"],
                             display_name=data["display_name"], role=data["role"])
        return ok(user_json(user))

    def put(self, request):
        body = UserUpdateInput(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        user = _live_user(pk=fields.pop("id"))
        if user is None:
            return fail(NOT_FOUND, field="id")
        user = user_update(user=user, by=request.user, **fields)
        return ok(user_json(user))


class UserSearchView(AdminView):
    def get(self, request):
        users = selectors.user_search(keyword=request.query_params.get("keyword", ""), limit=SEARCH_LIMIT)
        return ok([user_json(u) for u in users])


class UserDetailView(AdminView):
    def get(self, request, user_id: int):
        user = _live_user(pk=user_id)
        if user is None:
            return fail(NOT_FOUND)
        if not permissions.user_can_manage(request.user, user):
            return fail("you cannot view a user whose role is equal to or above yours")
        return ok(user_json(user))

    def delete(self, request, user_id: int):
        user = _live_user(pk=user_id)
        if user is None:
            return fail(NOT_FOUND)
        user_delete(user=user, by=request.user)
        return ok()


class UserManageView(AdminView):
    """POST /api/user/manage {username | id, action} → {role, status}."""

    def post(self, request):
        body = UserManageInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data.get("id"):
            user = _live_user(pk=data["id"])
        elif data.get("username"):
            user = _live_user(username=data["username"])
        else:
            return fail("give the user's username or id", field="username")
        if user is None:
            return fail(NOT_FOUND)
        user = user_manage(user=user, by=request.user, action=data["action"])
        return ok({"role": user.role, "status": user.status})
