"""The HTTP servers `fota server run --http-server` offers: tests of how the server behaves
as a process (slow clients, kill -9, graceful shutdown, several workers, the soak) run against
each of them, whichever is the default."""

from __future__ import annotations

from typing import Final, get_args

from secure_fota.server.settings import ServerSettings

#: every value of the http_server setting, the default first
HTTP_SERVERS: Final[tuple[str, ...]] = tuple(
    sorted(
        get_args(ServerSettings.model_fields["http_server"].annotation),
        key=lambda name: name != ServerSettings.model_fields["http_server"].default,
    )
)


def server_env(http_server: str) -> dict[str, str]:
    """The environment that makes `fota server run` use ``http_server``."""
    return {"FOTA_HTTP_SERVER": http_server}
