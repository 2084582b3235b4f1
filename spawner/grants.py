"""What every Safezone spawner shares: the project form and the grant life cycle."""

from __future__ import annotations

import asyncio
import html
from typing import Any

from tornado import web
from traitlets import HasTraits, Unicode, default

from .grant_client import GrantClient, GrantRefused
from .hub_pages import NO_PROJECT_MARK, PAGES, WAY_TO_A_PROJECT, request_language, text

RETRYING: set[asyncio.Task] = set()  # background grant ends, kept referenced until done
RETRY_TIMEOUT = 3.0  # seconds per attempt to end a dead server's grant (ending is idempotent)


class GrantMixin(HasTraits):
    """Mixed into a JupyterHub Spawner: a server exists only under a session grant."""

    control_plane_url = Unicode(
        "http://127.0.0.1:8700",
        config=True,
        help="URL of the Safezone control plane's API, as the hub reaches it.",
    )
    control_plane_token = Unicode(
        config=True,
        help="Hub token of the 'safezone-spawner' service (scope custom:safezone:sessions). "
        "Defaults to $SAFEZONE_SPAWNER_TOKEN.",
    )

    @default("control_plane_token")
    def _default_token(self) -> str:
        import os

        return os.environ.get("SAFEZONE_SPAWNER_TOKEN", "")

    grant: dict[str, Any] | None = None
    grant_id: str = ""

    @property
    def grant_client(self) -> GrantClient:
        return GrantClient(self.control_plane_url, self.control_plane_token)

    async def get_options_form(self) -> str:
        """A form listing only the user's approved, unexpired projects."""
        try:
            choices = await self.grant_client.usable_projects(self.user.name)
        except GrantRefused as exc:
            return f'<p class="alert alert-danger">{html.escape(exc.message)}</p>'
        if not choices:  # the hub's spawn.html shows the way to a project instead
            return f"<div {NO_PROJECT_MARK}></div>"
        options = "".join(f'<option value="{html.escape(p)}">{html.escape(p)}</option>'
                          for p in choices)
        return (f'<label for="sz-project">{html.escape(text()["project"])}</label>'
                f'<select id="sz-project" name="project" class="form-control">{options}'
                "</select>")

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        return {"project": (formdata.get("project") or [""])[0]}

    async def acquire_grant(self) -> dict[str, Any]:
        """Ask the control plane for this server's grant; refuse the start without one."""
        project = (self.user_options or {}).get("project")
        if not isinstance(project, str) or not project:
            raise self.refusal(400, text(self.spawn_language())["choose_project"])
        try:
            grant = await self.grant_client.issue(self.user.name, project, self.name or "")
        except GrantRefused as exc:
            status = exc.status if 400 <= exc.status < 500 else 503
            raise self.refusal(status, exc.message) from None
        self.grant, self.grant_id = grant, grant["grant_id"]
        return grant

    async def release_grant(self, grant_id: str = "") -> None:
        """End the grant (``grant_id``: one remembered before the state was cleared)."""
        grant_id = grant_id or self.grant_id
        if grant_id:
            await self.grant_client.end(grant_id)
        self.grant, self.grant_id = None, ""

    async def end_grant_surely(self, grant_id: str) -> None:
        """End the grant of a server that is gone. If the control plane cannot do it now
        (at a hub restart it cannot check our token until the hub API is up), keep trying
        in the background rather than leave the keys alive until they expire."""
        try:
            await self.grant_client.end(grant_id, timeout=RETRY_TIMEOUT)
        except Exception as exc:
            self.log.warning("could not end grant %s yet (%s): retrying", grant_id, exc)
            task = asyncio.ensure_future(self._keep_ending(grant_id))
            RETRYING.add(task)
            task.add_done_callback(RETRYING.discard)

    async def _keep_ending(self, grant_id: str, attempts: int = 180) -> None:
        # every second for two minutes (a restarted hub pod waits for the network policy
        # enforcer to admit its new address), then every ten seconds
        for attempt in range(attempts):
            await asyncio.sleep(1.0 if attempt < 120 else 10.0)
            try:
                await self.grant_client.end(grant_id, timeout=RETRY_TIMEOUT)
                self.log.info("ended grant %s after %d retries", grant_id, attempt + 1)
                return
            except Exception as exc:
                last = exc
        self.log.error("gave up ending grant %s (the sweeper ends it at expiry): %s",
                       grant_id, last)

    def refusal(self, status: int, message: str) -> web.HTTPError:
        """The hub's error page for a refused start: the reason, and the way to a project
        (the data catalogue, the application form, one's applications)."""
        error = web.HTTPError(status, message)
        language = self.spawn_language()
        words = text(language)
        pages = html.escape(getattr(getattr(self, "hub", None), "base_url", "/hub/")
                            .removesuffix("hub/") + PAGES)
        error.jupyterhub_html_message = (  # type: ignore[attr-defined]
            f'<span lang="{language}">{html.escape(words["refused"])}:</span> '
            f"{html.escape(message)}<br>"
            + " · ".join(f'<a lang="{language}" href="{pages}{path}">{html.escape(words[key])}</a>'
                         for path, key in WAY_TO_A_PROJECT))
        return error

    def spawn_language(self) -> str:
        """The language of the request that started this server (the Safezone pages'
        cookie, else ``Accept-Language``, else Korean); JupyterHub sets ``handler`` for the
        duration of ``start()``."""
        handler = getattr(self, "handler", None)
        return request_language(getattr(handler, "request", None))

    def grant_environment(self) -> dict[str, str]:
        """What the server's environment gets from its grant: keys, project, API URL, and
        the language the welcome notebook and JupyterLab use (``SAFEZONE_LANGUAGE``)."""
        if not self.grant:
            return {}
        return {**self.grant["environment"], "SAFEZONE_API_URL": self.control_plane_url,
                "SAFEZONE_LANGUAGE": self.spawn_language()}

    def grant_state(self, state: dict[str, Any]) -> dict[str, Any]:
        if self.grant_id:
            state["safezone_grant_id"] = self.grant_id
        return state

    def load_grant_state(self, state: dict[str, Any]) -> None:
        self.grant_id = state.get("safezone_grant_id", "")
