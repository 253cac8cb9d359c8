"""The viewer's HTTP server: the shipped page (``static/``), ``api/list`` (the GLBs under a folder and their
photos, as JSON) and ``files/<path>`` (files under that folder, nothing outside it). Standard library only."""

from __future__ import annotations

import json
import mimetypes
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

#: Pictures shown beside a GLB ``<stem>.glb``, the first that exists in its folder.
PHOTO_SUFFIXES = ("_vis_original.png", "_input.png", "_vis.png")
STATIC = resources.files("decalite.view") / "static"


def list_reconstructions(root: Path) -> list[dict[str, str | None]]:
    """Every ``*.glb`` under ``root`` (sorted): name (its path without the suffix), glb and photo URLs."""
    items = []
    for glb in sorted(root.rglob("*.glb")):
        rel = glb.relative_to(root)
        photo = next((glb.with_name(glb.stem + s) for s in PHOTO_SUFFIXES if glb.with_name(glb.stem + s).is_file()),
                     None)
        items.append({"name": str(rel.with_suffix("")), "glb": "files/" + quote(rel.as_posix()),
                      "photo": "files/" + quote(photo.relative_to(root).as_posix()) if photo else None})
    return items


class ViewerHandler(BaseHTTPRequestHandler):
    """GET only: ``/`` and the page's files, ``/api/list``, ``/files/...`` (under ``root``)."""

    def __init__(self, *args, root: Path, **kwargs) -> None:
        self.root = root
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (quiet: the CLI logs the address)
        pass

    def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        path = unquote(urlparse(self.path).path).lstrip("/") or "index.html"
        if path == "api/list":
            return self._send(json.dumps(list_reconstructions(self.root)).encode(), "application/json")
        if path.startswith("files/"):
            target = (self.root / path.removeprefix("files/")).resolve()
            if not target.is_relative_to(self.root.resolve()) or not target.is_file():
                return self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
            return self._send(target.read_bytes(), mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        asset = STATIC / path
        if "/" in path or not asset.is_file():
            return self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
        kind = "text/javascript" if path.endswith(".js") else mimetypes.guess_type(path)[0] or "text/plain"
        return self._send(asset.read_bytes(), kind)


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """The server for ``root`` (port 0: any free port; ``server.server_address`` says which)."""
    return ThreadingHTTPServer((host, port), partial(ViewerHandler, root=Path(root)))


def serve_in_background(root: Path, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns it and its base URL (``server.shutdown()`` stops it)."""
    server = make_server(root, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"
