"""The service's routes are declared once (a router per concern) and every one of them is counted in ``/metrics``
under its own ``route`` label, read from the app rather than from a hand-kept list; any other path is "other"."""
import time

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
pytest.importorskip("httpx")

from fastapi import APIRouter  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from vocoder import Vocoder  # noqa: E402
from vocoder.serving import ServeConfig, create_app, protocol  # noqa: E402
from vocoder.serving.metrics import OTHER, route_labels  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture(scope="module")
def voc():
    torch.manual_seed(0)
    return Vocoder.from_pretrained("hifigan_v3", random_init=True)


def _counted(text: str) -> dict:
    """``{route label: requests counted}`` from the Prometheus text of ``/metrics``."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "vocoder_requests_total":
                out[s.labels["route"]] = out.get(s.labels["route"], 0) + s.value
    return out


def test_the_routes_are_the_service_api(voc):
    app = create_app(voc, ServeConfig(warmup=False, stream_prewarm=0))
    assert route_labels(app.routes) == {"/v1/synthesize", "/v1/stream", "/v1/info", "/healthz", "/metrics"}


def test_every_route_has_its_own_metrics_label(voc):
    """Each route of the app, one added after create_app included, is counted under its path; a path that is no
    route (a typo, FastAPI's /openapi.json) is "other"."""
    app = create_app(voc, ServeConfig(warmup=False, stream_prewarm=0))
    extra = APIRouter()

    @extra.get("/v1/extra")
    async def _extra():
        return {}

    app.include_router(extra)
    labels = route_labels(app.routes)
    assert "/v1/extra" in labels and OTHER not in labels
    with TestClient(app) as c:
        for path in sorted(labels):  # any method: a wrong one (405) or HTTP on the socket's path still counts
            c.get(path)
        c.get("/nope")
        c.get("/openapi.json")
        with c.websocket_connect("/v1/stream") as ws:  # the stream counts itself when it closes
            ws.send_bytes(protocol.encode_mel_frame(None, end=True, n_mels=voc.n_mels))
            assert ws.receive()["code"] == protocol.CLOSE_CODES["invalid"]
            deadline = time.monotonic() + 30
            # Poll before leaving the block: the test client cancels a handler still cleaning up when it exits.
            while (counted := _counted(c.get("/metrics").text)).get("/v1/stream", 0) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    assert set(counted) == labels | {OTHER}
    assert counted[OTHER] == 2 and counted["/v1/stream"] == 2  # GET + the socket
    assert all(counted[p] == 1 for p in labels - {"/v1/stream", "/metrics"})  # /metrics: as often as polled
