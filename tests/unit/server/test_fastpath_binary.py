"""The Range fast path's view of the URL (secure_fota.server.fastpath_binary.binary_target)
against the route's own: Starlette's compiled template."""

from __future__ import annotations

from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import compile_path

from secure_fota.server.fastpath_binary import BINARY_TEMPLATE, binary_target
from secure_fota.server.routes import v1

ROUTE_REGEX = compile_path(BINARY_TEMPLATE)[0]
PREFIX = "/api/v1/device-types/"

segments = st.text(alphabet=st.sampled_from("ab1./-_ \n%"), max_size=6)
paths = st.one_of(
    st.builds(
        lambda a, b, c: f"{PREFIX}{a}/{b}/{c}/binary",
        segments,
        st.one_of(st.just("releases"), segments),
        segments,
    ),
    st.builds(
        lambda tail: PREFIX + tail, st.text(alphabet=st.sampled_from("ab1/-\n"), max_size=30)
    ),
    st.builds(lambda head: head + "/binary", st.text(max_size=40)),
)


def test_the_template_is_the_routes():
    templates = {
        route.path
        for route in v1.router.routes
        if isinstance(route, APIRoute) and route.name == "release_binary"
    }
    assert templates == {BINARY_TEMPLATE}


@given(paths)
def test_binary_target_agrees_with_the_route(path: str):
    match = ROUTE_REGEX.match(path)
    target = binary_target(path)
    if target is not None:  # what the fast path takes, the route would have matched the same
        assert match is not None
        assert target == (match["device_type"], match["release_id"])
    elif match is not None:  # what the fast path leaves, the route may match ...
        assert path.endswith("\n")  # ... only because "$" also matches before a final newline


def test_examples():
    assert binary_target(f"{PREFIX}sensor/releases/12/binary") == ("sensor", "12")
    for path in (
        f"{PREFIX}binary",
        f"{PREFIX}/releases/1/binary",
        f"{PREFIX}sensor/releases//binary",
        f"{PREFIX}sensor/releases/1/x/binary",
        f"{PREFIX}sensor/release/1/binary",
        f"{PREFIX}sensor/releases/1/binary/",
        "/api/v1/device-types/sensor/newest/binary",
    ):
        assert binary_target(path) is None, path
