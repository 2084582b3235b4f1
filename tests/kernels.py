"""Run code in a kernel of a real Jupyter server, through the hub's proxy (REST + WebSocket)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import websocket


class KernelDied(RuntimeError):
    """The kernel died while running the code (e.g. OOM-killed by its cgroup)."""


class KernelSession:
    """One kernel on the server at ``base_url`` (…/user/NAME/), kept for several runs."""

    def __init__(self, base_url: str, token: str, timeout: float = 60) -> None:
        self.base_url, self.timeout = base_url, timeout
        self.headers = {"Authorization": f"token {token}"}
        response = httpx.post(f"{base_url}api/kernels", headers=self.headers, json={},
                              timeout=60)
        response.raise_for_status()
        self.kernel_id = response.json()["id"]
        ws_url = base_url.replace("http://", "ws://") + f"api/kernels/{self.kernel_id}/channels"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                              timeout=timeout)

    def run(self, code: str) -> str:
        """Execute ``code``; return its stdout, raise its traceback or :class:`KernelDied`."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.now(UTC).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        while True:
            msg = json.loads(self.ws.recv())
            kind = msg["header"]["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] in ("restarting",
                                                                           "dead"):
                raise KernelDied(msg["content"]["execution_state"])
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)

    def close(self) -> None:
        self.ws.close()
        httpx.delete(f"{self.base_url}api/kernels/{self.kernel_id}", headers=self.headers,
                     timeout=30)


def run_code(base_url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel on the server at ``base_url`` (…/user/NAME/), run ``code``, return stdout."""
    kernel = KernelSession(base_url, token, timeout)
    try:
        return kernel.run(code)
    finally:
        kernel.close()
