"""Pooled 1280-d Lite0 embeddings of many augmented views, computed once and cached on disk.

A full fine-tune runs ~5 img/s on 2 CPU cores; the float LiteRT graph cut at the pooled
embedding runs ~3-5 ms per image. So the CPU recipe computes the embedding of every training
image under many random "cameras" (augment.augmented_views_uint8) with the frozen trunk of the
warm-start model and trains the head on that cache. Each round of views is its own file, so an
interrupted extraction keeps what it finished and a later run adds rounds instead of starting over.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from cloud.training.lite0_keras import build_keras_lite0, normalise_nhwc, port_torch_weights
from kiosk.files import atomic_write_bytes

INPUT_SIDE = 224
EMBED_DIM = 1280


TOP_BLOCK = 15  # the last MBConv block; its input is cached so it can be retrained
TOP_INPUT_SHAPE = (7, 7, 192)  # block 14's output at 224 px, NHWC


def embedding_tflite(state: Mapping[str, torch.Tensor], side: int = INPUT_SIDE) -> bytes:
    """A float .tflite of the warm-start trunk with two outputs: the pooled embedding and the
    input of the top block (block 14's output), so the top block can be retrained on a cache."""
    import keras

    from cloud.training.tflite_export import convert_float

    n_classes = int(state["_fc.bias"].shape[0])
    full = build_keras_lite0(n_classes, side)
    port_torch_weights(full, state)
    outputs = [full.get_layer("pool").output, full.get_layer(f"block{TOP_BLOCK - 1}_add").output]
    trunk = keras.Model(full.input, outputs, name="lite0_trunk")
    return convert_float(trunk)


class Embedder:
    """LiteRT runner of an embedding .tflite (one image per invoke, as fast as batching here).

    Returns (pooled embeddings float32 (N, 1280), top-block inputs float16 (N, 7, 7, 192))."""

    def __init__(self, model_bytes: bytes, threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._it = Interpreter(model_content=model_bytes, num_threads=threads)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]["index"]
        outs = {tuple(d["shape"][1:]): d["index"] for d in self._it.get_output_details()}
        self._pool, self._top = outs[(EMBED_DIM,)], outs[TOP_INPUT_SHAPE]

    def __call__(self, images_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pooled = np.empty((len(images_uint8), EMBED_DIM), dtype=np.float32)
        top = np.empty((len(images_uint8), *TOP_INPUT_SHAPE), dtype=np.float16)
        for i, img in enumerate(images_uint8):
            self._it.set_tensor(self._in, normalise_nhwc(img[None]))
            self._it.invoke()
            pooled[i] = self._it.get_tensor(self._pool)[0]
            top[i] = self._it.get_tensor(self._top)[0]
        return pooled, top


def _save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def centre_embeddings(
    embed: Embedder, images_224: np.ndarray, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and top-block inputs of the kiosk's own view (centre square, area resize),
    cached in `path` (and `path` with suffix -top)."""
    top_path = path.with_name(path.stem + "-top.npy")
    if path.exists() and top_path.exists():
        return np.load(path), np.load(top_path)
    feats, top = embed(images_224)
    _save_npy(top_path, top)
    _save_npy(path, feats.astype(np.float16))
    return feats.astype(np.float16), top


def view_rounds(
    embed: Embedder,
    images: np.ndarray,
    rounds: int,
    folder: Path,
    seed: int,
    batch: int = 64,
    deadline: float = 0.0,
    log=print,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`rounds` augmented views of every image (one file per round, view-major), cached:
    (pooled embeddings per round, top-block inputs per round, memory-mapped).

    Round r always uses seed (seed, r): re-running adds the missing rounds only. With a
    `deadline` (time.time() value) no new round starts after it.
    """
    from cloud.training.augment import augmented_views_uint8

    folder.mkdir(parents=True, exist_ok=True)
    done: list[np.ndarray] = []
    tops: list[np.ndarray] = []
    for r in range(rounds):
        path = folder / f"round{r:02d}.npy"
        top_path = folder / f"round{r:02d}-top.npy"
        if path.exists() and top_path.exists():
            done.append(np.load(path))
            tops.append(np.load(top_path, mmap_mode="r"))
            continue
        if deadline and time.time() > deadline:
            log(f"view rounds: stopped at {r} of {rounds} (time budget)")
            break
        t0 = time.time()
        g = torch.Generator().manual_seed(seed * 1000 + r)
        rng = np.random.default_rng([seed, r])
        feats = np.empty((len(images), EMBED_DIM), dtype=np.float16)
        top = np.empty((len(images), *TOP_INPUT_SHAPE), dtype=np.float16)
        for i in range(0, len(images), batch):
            views = augmented_views_uint8(images[i : i + batch], INPUT_SIDE, g, rng)
            feats[i : i + batch], top[i : i + batch] = embed(views)
        _save_npy(top_path, top)
        _save_npy(path, feats)
        done.append(feats)
        tops.append(np.load(top_path, mmap_mode="r"))
        log(f"view round {r + 1}/{rounds}: {len(images)} images in {time.time() - t0:.0f} s")
    return done, tops
