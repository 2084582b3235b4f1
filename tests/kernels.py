"""Run code in a kernel of a real Jupyter server, through the hub's proxy (REST + WebSocket)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import websocket


def run_code(base_url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel on the server at ``base_url`` (…/user/NAME/), run ``code``, return stdout."""
    headers = {"Authorization": f"token {token}"}
    response = httpx.post(f"{base_url}api/kernels", headers=headers, json={}, timeout=60)
    response.raise_for_status()
    kernel_id = response.json()["id"]
    ws_url = base_url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                     timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.now(UTC).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()
        httpx.delete(f"{base_url}api/kernels/{kernel_id}", headers=headers, timeout=30)
