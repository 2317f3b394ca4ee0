"""The Ray Serve deployment of ``vocoder serve`` on a local single-node Ray instance (skipped where Ray is not
installed or cannot start): same routes, same answers as the uvicorn server, concurrent requests batched."""
import asyncio
import os
import socket
import time

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("websockets")
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[serve]')")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'ray[serve]')")

import httpx  # noqa: E402

from vocoder import Vocoder  # noqa: E402
from vocoder.serving import AsyncClient, Client, ServeConfig  # noqa: E402
from vocoder.serving import ray_serve  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def _mel(frames, seed=0):
    return (np.random.default_rng(seed).standard_normal((80, frames)) - 4.0).astype(np.float32)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    old = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED",)}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report (the machine has no network anyway)
    torch.manual_seed(0)
    voc = Vocoder.from_pretrained("hifigan_v3", random_init=True)
    path = tmp_path_factory.mktemp("ray") / "model.pt"
    voc.save(path)  # the replica loads the same weights from the file
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2 ** 20)
    except Exception as e:  # no shared memory, no ports, a sandbox that forbids it, ...
        pytest.skip(f"Ray cannot start here: {type(e).__name__}: {e}")
    try:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        cfg = ServeConfig(max_batch=2, max_wait_ms=20000, stream_prewarm=0)
        serve.run(ray_serve.application(str(path), cfg, replicas=1, cpus_per_replica=1, threads=1),
                  name="vocoder", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Ray Serve app did not become healthy"
            time.sleep(0.2)
        yield url, voc
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_ray_serve_routes_batching_and_stream(ray_server):
    url, voc = ray_server
    mels = [_mel(40, 1), _mel(57, 2)]
    refs = [voc(torch.from_numpy(m)).numpy() for m in mels]
    with Client(url) as c:
        info = c.info()
        assert info["n_mels"] == 80 and info["lookahead_frames"] == 11 and info["model"].endswith("model.pt")
        assert "vocoder_requests_total" in c.metrics()
        streamed = np.concatenate(list(c.stream(mels[0][:, i:i + 7] for i in range(0, 40, 7))))
        assert np.abs(streamed - refs[0]).max() < 1e-4
        r = httpx.post(url + "/v1/synthesize", content=b"nope", trust_env=False)
        assert r.status_code == 400 and "not a .npy" in r.json()["detail"]

    async def two():  # max_batch 2 with a 20 s window: the batch leaves when both are in
        async with AsyncClient(url) as c:
            return await asyncio.gather(*(c.request(m) for m in mels))

    results = asyncio.run(two())
    assert [r.batch_size for r in results] == [2, 2] and results[0].batch_id == results[1].batch_id
    for r, ref in zip(results, refs):
        assert r.audio.shape == ref.shape and np.abs(r.audio - ref).max() < 1e-5


def test_build_app_arguments(monkeypatch):
    with pytest.raises(ValueError, match="model="):
        ray_serve.build_app({})
    with pytest.raises(ValueError, match="unknown arguments"):
        ray_serve.build_app({"model": "m.pt", "colour": "blue"})
    monkeypatch.delenv("VOCODER_MODEL", raising=False)
    with pytest.raises(ValueError, match="VOCODER_MODEL"):
        ray_serve.app_from_env()
    app = ray_serve.build_app({"model": "hifigan_v3", "random_init": "true", "replicas": "2",
                               "serve_config": '{"max_batch": 4}'})
    assert type(app).__name__ == "Application"
