"""The stack comes up and the hub's tokens carry the roles the control plane checks."""


def test_roles_come_from_hub_scopes(stack):
    me = stack.api("admin").get("/api/me").json()
    assert me["admin"] is True and me["reviewer"] is False
    me = stack.api("alice").get("/api/me").json()
    assert me["admin"] is False and me["name"] == "alice"
    assert stack.api("reviewer").get("/api/me").json()["reviewer"] is True


def test_unknown_token_is_refused(stack):
    import httpx

    response = httpx.get(f"{stack.control_plane.url}/api/me",
                         headers={"Authorization": "token not-a-real-token"})
    assert response.status_code == 401
    assert "token" in response.json()["error"]


def test_api_is_reachable_through_the_hub_proxy(stack):
    import httpx

    response = httpx.get(f"{stack.hub_url}/services/safezone/api/me",
                         headers={"Authorization": f"token {stack.tokens['alice']}"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "alice"


def test_clients_in_front_drop_idle_connections_before_the_control_plane_does(stack):
    """configurable-http-proxy reused a connection uvicorn was closing and answered a 503
    page (CI): every response announces the server's idle timeout, which Node's agent
    honours (it lets go a second early), and the timeout outlasts httpx's pool (5 s)."""
    import httpx

    response = httpx.get(f"{stack.control_plane.url}/api/health")
    closes_after = stack.control_plane.server.config.timeout_keep_alive
    assert response.headers["keep-alive"] == f"timeout={closes_after}"
    assert closes_after > httpx.Limits().keepalive_expiry
