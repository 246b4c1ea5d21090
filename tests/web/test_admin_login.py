"""The admin is behind a login form with CSRF protection."""

from __future__ import annotations

import re

import pytest

from tests.support import ADMIN_PASSWORD, ADMIN_USERNAME


def _csrf(client, path: str = "/admin/login/") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def login(client, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD):
    """Log in through the real form (with its CSRF token).

    Args:
        client: A Flask test client.
        username: Account name.
        password: Password.

    Returns:
        The response to the POST.
    """
    token = _csrf(client)
    return client.post(
        "/admin/login/", data={"username": username, "password": password, "csrf_token": token}
    )


@pytest.mark.parametrize("path", ["/admin/", "/admin/?x=1"])
def test_anonymous_is_sent_to_login(client, path: str) -> None:
    """Anonymous requests get a redirect to the login page, never data."""
    response = client.get(path)
    assert response.status_code == 302
    assert "/admin/login/" in response.headers["Location"]


def test_login_page_is_served(client) -> None:
    """The login page renders with its form."""
    response = client.get("/admin/login/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="password"' in page and 'name="username"' in page


def test_login_and_logout(client) -> None:
    """Valid credentials open the dashboard; logging out closes it again."""
    response = login(client)
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/").text).group(1)
    assert client.post("/admin/logout/", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_wrong_password_is_refused(client) -> None:
    """A wrong password keeps the visitor out."""
    response = login(client, password="wrong")
    assert response.status_code == 200
    assert "Invalid username or password" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_without_csrf_token_is_rejected(client) -> None:
    """A form posted without its CSRF token is refused, even with the right password."""
    response = client.post(
        "/admin/login/", data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_next_parameter_cannot_redirect_elsewhere(client) -> None:
    """The post-login redirect stays on this site."""
    token = _csrf(client)
    response = client.post(
        "/admin/login/?next=//evil.example.com/",
        data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert "evil.example.com" not in response.headers["Location"]


def test_session_cookie_is_httponly_and_samesite(client) -> None:
    """The session cookie cannot be read by scripts nor sent cross-site."""
    response = login(client)
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_repeated_failures_are_slowed_down(client) -> None:
    """After several wrong passwords even the right one is refused for a while (429)."""
    from shared.services.login_throttle import MAX_FAILURES

    for _ in range(MAX_FAILURES):
        assert login(client, password="wrong").status_code == 200
    response = login(client)
    assert response.status_code == 429
    assert "Too many failed logins" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("target", ["/\\evil.example.com", "https://evil.example.com/"])
def test_next_parameter_rejects_disguised_hosts(client, target: str) -> None:
    """Backslash tricks and absolute URLs do not leave the site either."""
    token = _csrf(client)
    response = client.post(
        "/admin/login/",
        query_string={"next": target},
        data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"].endswith("/admin/")


def test_failures_from_elsewhere_do_not_lock_the_admin_out(client, app) -> None:
    """Failed logins for 'admin' from another address do not block this address."""
    from shared.services import login_throttle

    with app.test_request_context():
        for _ in range(login_throttle.MAX_FAILURES + 2):
            login_throttle.record_failure(ADMIN_USERNAME, "203.0.113.9")
    assert login(client).status_code == 302
