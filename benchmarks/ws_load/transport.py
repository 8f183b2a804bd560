"""A simulated student's network side, as a browser tab has it: one cookie jar for everything it
sends (the XSRF cookie Streamlit sets, a reverse proxy's sticky-session cookie), the HTTP requests
the frontend makes before it connects (the page, /_stcore/health, /_stcore/host-config) and for an
upload (PUT /_stcore/upload_file/..., multipart, with the X-Xsrftoken header), and the websocket
to /_stcore/stream with the frontend's subprotocols: "streamlit", then the XSRF token (or
"PLACEHOLDER_AUTH_TOKEN" when there is no cookie), then the last session id when reconnecting."""
from __future__ import annotations

import asyncio
import http.cookiejar
import secrets
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

XSRF_COOKIE = "_streamlit_xsrf"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) cka-ws-load"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # the server's default server.maxMessageSize is 200 MB


class _HandshakeResponse:
    """The websocket handshake's response headers, in the shape CookieJar.extract_cookies reads."""

    def __init__(self, headers) -> None:
        """Wrap the handshake's headers."""
        self._headers = headers

    def info(self):
        """The headers (what a urllib response's info() returns)."""
        return self

    def get_all(self, name: str, default=None):
        """Every value of one header."""
        return self._headers.get_all(name) or default


class Transport:
    """The cookie jar, HTTP requests and websocket of one student, against ``base_url`` (any URL
    the app is served at: the server itself, or a reverse proxy in front of several)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        """A tab with an empty cookie jar."""
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                   urllib.request.HTTPCookieProcessor(self.jar))
        parts = urlsplit(self.base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        scheme = "wss" if parts.scheme == "https" else "ws"
        self.stream_url = scheme + self.base[len(parts.scheme):] + "/_stcore/stream"

    def url(self, path: str) -> str:
        """An absolute URL for a page's url path or an endpoint the server named (``/_stcore/...``
        is under the app's base URL, as the frontend joins it)."""
        return path if "://" in path else f"{self.base}/{path.lstrip('/')}"

    def _request(self, request: urllib.request.Request) -> int:
        """Send an HTTP request with the tab's cookies (kept from the response); its status."""
        request.add_header("User-Agent", USER_AGENT)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    async def get(self, path: str) -> int:
        """GET a page or endpoint (cookies kept); its HTTP status."""
        return await asyncio.to_thread(self._request, urllib.request.Request(self.url(path)))

    async def load_page(self, url_path: str) -> list[int]:
        """What the browser requests before it opens the websocket: the page (a proxy's sticky
        cookie comes with it), then the health check (Streamlit's XSRF cookie) and host config."""
        return [await self.get(url_path), await self.get("_stcore/health"), await self.get("_stcore/host-config")]

    def xsrf_token(self) -> str | None:
        """The XSRF cookie's value, which the frontend sends back as a token."""
        return next((c.value for c in self.jar if c.name == XSRF_COOKIE), None)

    def _cookie_header(self, url: str) -> str | None:
        """The Cookie header the jar sends to ``url``."""
        request = urllib.request.Request(url)
        self.jar.add_cookie_header(request)
        return request.get_header("Cookie")

    async def open_socket(self, last_session_id: str | None) -> ClientConnection:
        """The websocket, opened as the frontend opens it (Origin, cookies, subprotocols)."""
        protocols = ["streamlit", self.xsrf_token() or "PLACEHOLDER_AUTH_TOKEN"]
        if last_session_id:
            protocols.append(last_session_id)
        cookies = self._cookie_header(self.url("_stcore/stream"))
        socket = await connect(self.stream_url, subprotocols=protocols, origin=self.origin,
                               additional_headers={"Cookie": cookies} if cookies else None,
                               user_agent_header=USER_AGENT, proxy=None, open_timeout=self.timeout,
                               max_size=MAX_MESSAGE_BYTES, max_queue=None, ping_interval=None)
        self.jar.extract_cookies(_HandshakeResponse(socket.response.headers),
                                 urllib.request.Request(self.url("_stcore/stream")))
        return socket

    def _put(self, url: str, name: str, data: bytes) -> int:
        """PUT one file as a one-field multipart form, with the X-Xsrftoken header; the status."""
        boundary = "----ckawsload" + secrets.token_hex(8)
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(url, data=body, method="PUT")
        request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        token = self.xsrf_token()
        if token:
            request.add_header("X-Xsrftoken", token)
        return self._request(request)

    async def put_file(self, upload_url: str, name: str, data: bytes) -> int:
        """PUT one file to the URL the server gave for it, as the frontend's uploader does (one
        multipart field named after the file); the HTTP status (204 when stored)."""
        return await asyncio.to_thread(self._put, self.url(upload_url), name, data)
