"""EmbeddingModel: exact analytic embeddings, each contract violation, device choice."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from analog_plugin.core.errors import (
    DeviceUnavailableError,
    ModelContractError,
    ModelLoadError,
)
from analog_plugin.core.feedback import RecordingFeedback
from analog_plugin.core.model import CPU, CUDA, EmbeddingModel, default_threads, select_providers
from tests.onnx_models import (
    BROKEN_KIND_HINTS,
    BROKEN_KINDS,
    expected_mean_embedding,
    make_broken_model,
    make_mean_model,
)


def test_analytic_embeddings_exact(mean_model: Path) -> None:
    fb = RecordingFeedback()
    m = EmbeddingModel(mean_model, device="cpu", feedback=fb)
    assert (m.input_size, m.channels, m.embedding_dim) == (32, 1, 2)
    assert m.provider == CPU
    assert any("CPUExecutionProvider" in s for s in fb.infos)
    x = np.zeros((3, 1, 32, 32), np.float32)
    x[1] = 0.5
    x[2, :, :16] = 1.0  # mean 0.5 as well, different pattern
    e = m.embed(x)
    assert e.dtype == np.float32 and e.shape == (3, 2)
    np.testing.assert_allclose(e[0], [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(e[1], expected_mean_embedding(0.5), atol=1e-7)
    np.testing.assert_allclose(e[2], expected_mean_embedding(0.5), atol=1e-7)


def test_long_batch_runs_in_slices_in_order(mean_model: Path) -> None:
    """150 tiles of 32 px = runs of 128 + 22 on CPU (8 x 128^2 px per run / 32^2 px per tile):
    the session sees exactly those runs, and every tile keeps its own embedding in its own row
    (tile i has mean i / 150, the analytic model's output follows the mean)."""
    from analog_plugin.core.model import cpu_run_tiles
    from analog_plugin.core.params import BATCH_SIZE

    assert [cpu_run_tiles(s) for s in (32, 96, 128, 224, 512)] == [128, 14, 8, 2, 1]
    assert "slices of 8 tiles of 128 px" in BATCH_SIZE.help  # the user-facing help agrees
    m = EmbeddingModel(mean_model, device="cpu")
    runs: list[int] = []
    real_run = m._session.run

    class Recording:  # onnxruntime's session object does not take new attributes
        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            runs.append(len(next(iter(feeds.values()))))
            return real_run(names, feeds)

    m._session = Recording()
    means = np.arange(150, dtype=np.float32) / 150
    x = np.broadcast_to(means[:, None, None, None], (150, 1, 32, 32)).copy()
    e = m.embed(x)
    assert runs == [128, 22]
    assert e.shape == (150, 2)
    want = np.stack([expected_mean_embedding(float(v)) for v in means])
    np.testing.assert_allclose(e, want, atol=1e-6)


def test_three_channel_dynamic_size_model(tmp_path: Path) -> None:
    p = make_mean_model(tmp_path / "m3.onnx", input_size=16, channels=3, dynamic_size=True,
                        const=2.0)
    m = EmbeddingModel(p, device="auto")
    x = np.zeros((1, 3, 16, 16), np.float32)
    x[0, 0] = 0.3
    x[0, 1] = 0.6
    x[0, 2] = 0.9
    np.testing.assert_allclose(m.embed(x)[0], expected_mean_embedding(0.6, 2.0), atol=1e-6)


def test_embed_rejects_wrong_batch_shape(mean_model: Path) -> None:
    m = EmbeddingModel(mean_model)
    with pytest.raises(ValueError, match=r"\[N, 1, 32, 32\]"):
        m.embed(np.zeros((1, 1, 16, 16), np.float32))
    assert m.embed(np.zeros((0, 1, 32, 32), np.float32)).shape == (0, 2)


def test_sha256_of_file(mean_model: Path) -> None:
    m = EmbeddingModel(mean_model)
    assert m.sha256 == hashlib.sha256(mean_model.read_bytes()).hexdigest()


def test_metadata_values(tmp_path: Path) -> None:
    p = make_mean_model(tmp_path / "m.onnx", mean=[0.5], std=[0.25], gsd_m=0.25, version="9.9")
    m = EmbeddingModel(p)
    assert m.mean == (0.5,) and m.std == (0.25,)
    assert m.metadata.gsd_m == 0.25 and m.metadata.version == "9.9"


@pytest.mark.parametrize("kind", [k for k in BROKEN_KINDS if k != "corrupt"])
def test_each_contract_violation_is_named(tmp_path: Path, kind: str) -> None:
    p = make_broken_model(tmp_path / f"{kind}.onnx", kind)
    with pytest.raises(ModelContractError) as ei:
        EmbeddingModel(p)
    assert BROKEN_KIND_HINTS[kind] in str(ei.value).lower(), str(ei.value)


def test_wrong_json_type_message_says_expected_type(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match="must be a JSON int"):
        EmbeddingModel(make_broken_model(tmp_path / "x.onnx", "wrong_json_type"))


def test_corrupt_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="corrupt"):
        EmbeddingModel(make_broken_model(tmp_path / "c.onnx", "corrupt"))
    with pytest.raises(ModelLoadError, match="not found"):
        EmbeddingModel(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError):
        EmbeddingModel(tmp_path)  # a folder


def test_cuda_without_cuda_is_an_error_not_a_fallback(mean_model: Path) -> None:
    import onnxruntime as ort

    if CUDA in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailableError) as ei:
        EmbeddingModel(mean_model, device="cuda")
    msg = str(ei.value)
    assert "CPUExecutionProvider" in msg and "onnxruntime-gpu" in msg and "auto" in msg


def test_select_providers() -> None:
    assert select_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert select_providers("auto", [CPU]) == [CPU]
    assert select_providers("cpu", [CUDA, CPU]) == [CPU]
    assert select_providers("CUDA", [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(DeviceUnavailableError, match="AzureExecutionProvider"):
        select_providers("cuda", ["AzureExecutionProvider", CPU])
    with pytest.raises(DeviceUnavailableError, match="unknown"):
        select_providers("tpu", [CPU])


def test_default_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALOG_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("ANALOG_THREADS")
    assert 1 <= default_threads() <= 8
