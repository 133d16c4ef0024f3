from django.urls import path

from . import views

urlpatterns = [
    path("users", views.UserListApi.as_view(), name="users"),
    path("users/<str:username>", views.UserDetailApi.as_view(), name="user"),
    path("groups", views.GroupListApi.as_view(), name="groups"),
    path("groups/<str:name>", views.GroupDetailApi.as_view(), name="group"),
    path("tokens", views.TokenListApi.as_view(), name="tokens"),
    path("tokens/<str:token_id>", views.TokenDetailApi.as_view(), name="token"),
    path("auth/login", views.AuthLoginApi.as_view(), name="auth-login"),
    path("auth/refresh", views.AuthRefreshApi.as_view(), name="auth-refresh"),
    path("whoami", views.WhoamiApi.as_view(), name="whoami"),
]
