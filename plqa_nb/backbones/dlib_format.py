"""A reader for dlib's binary serialisation of DNN models (``.dat`` files).

Written from the format as dlib documents it (``dlib/serialize.h``, ``dlib/dnn/core.h``,
``dlib/dnn/layers.h``, ``dlib/dnn/input.h``, ``dlib/dnn/loss.h``, ``dlib/cuda/tensor.h``);
pure Python and numpy, no dlib needed.

Primitive encodings:

* **integer**: one control byte (low nibble = number of payload bytes, 1..8; bit 0x80 = sign
  for signed types) followed by the magnitude, little-endian.
* **bool**: one ASCII byte, ``'1'`` or ``'0'``.
* **string**: an integer length, then the bytes.
* **float/double**: two integers, mantissa (int64) and exponent (int16);
  value = mantissa · 2^exponent (exponents 32000/32001/32002 mean +inf/−inf/NaN).
* **tensor**: integer version (2), four integers num_samples, k, nr, nc, then
  num_samples·k·nr·nc little-endian IEEE float32 values.
* **alias_tensor** (a view shape into a layer's ``params``): version (1) and four integers.

Network layout (``add_loss_layer`` → ``add_layer`` … → input layer): every wrapper writes its
version integer and then its sub-network *before* its own data, so a file holds the loss,
then the versions of all wrappers from the output down to the input (``add_layer`` 1–3,
``tag``/``skip`` layers 1), then the input layer, then each computational layer's data from
the input upwards, each followed by the ``add_layer`` bookkeeping (flags, cached tensors).
``tag`` and ``skip`` layers write nothing but their version, so they cannot be told apart from
the file: the reader reports them as ``"tag_or_skip"`` placeholders at their position.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DlibFormatError",
    "DlibLayer",
    "DlibReader",
    "decode_compact_int",
    "encode_compact_int",
    "read_dlib_network",
    "read_dlib_resnet_weights",
]

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialisation format (message names file and offset)."""


def decode_compact_int(data: bytes | bytearray | memoryview, pos: int = 0, signed: bool = True) -> tuple[int, int]:
    """Decode one dlib compact integer at ``data[pos]``; returns ``(value, next_pos)``.

    Raises:
        DlibFormatError: bad control byte or truncated data.
    """
    if pos >= len(data):
        raise DlibFormatError(f"unexpected end of data at offset {pos} (expected an integer)")
    ctrl = data[pos]
    n = ctrl & 0x0F
    negative = bool(ctrl & 0x80)
    # dlib leaves bits 0x70 zero; for unsigned types a set sign bit makes the size invalid.
    if n == 0 or n > 8 or (ctrl & 0x70) or (negative and not signed):
        raise DlibFormatError(f"invalid integer control byte 0x{ctrl:02x} at offset {pos}")
    end = pos + 1 + n
    if end > len(data):
        raise DlibFormatError(f"unexpected end of data at offset {pos} (integer of {n} bytes)")
    value = int.from_bytes(bytes(data[pos + 1:end]), "little")
    return (-value if negative else value), end


def encode_compact_int(value: int) -> bytes:
    """Encode an integer the way dlib does (inverse of ``decode_compact_int``)."""
    negative = value < 0
    magnitude = -value if negative else value
    payload = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    if len(payload) > 8:
        raise ValueError(f"{value} does not fit in 64 bits")
    return bytes([len(payload) | (0x80 if negative else 0)]) + payload


class DlibReader:
    """Sequential reader over the bytes of a dlib-serialised object.

    Every method reads one item at the current offset and advances; errors are
    ``DlibFormatError`` naming ``source`` and the offset.
    """

    def __init__(self, data: bytes, source: str = "<bytes>"):
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def error(self, problem: str, pos: int | None = None) -> DlibFormatError:
        return DlibFormatError(f"{self.source}: not a valid dlib model file: {problem} "
                               f"(at byte offset {self.pos if pos is None else pos})")

    def int(self, signed: bool = True) -> int:
        try:
            value, self.pos = decode_compact_int(self.data, self.pos, signed)
        except DlibFormatError as exc:
            raise self.error(str(exc)) from None
        return value

    def uint(self) -> int:
        return self.int(signed=False)

    def peek_int(self) -> int:
        """The next integer without consuming it."""
        start = self.pos
        try:
            return self.int()
        finally:
            self.pos = start

    def bool(self) -> bool:
        if self.pos >= len(self.data):
            raise self.error("unexpected end of data (expected a bool)")
        b = self.data[self.pos]
        if b not in (0x30, 0x31):
            raise self.error(f"invalid bool byte 0x{b:02x}")
        self.pos += 1
        return b == 0x31

    def float(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.error("old ASCII float encoding is not supported")
        mantissa = self.int()
        exponent = self.int()
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def string(self) -> str:
        n = self.uint()
        if self.pos + n > len(self.data):
            raise self.error(f"string of length {n} runs past the end of the data")
        raw = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"non-ASCII string {raw[:40]!r}") from None

    def expect_string(self, *allowed: str) -> str:
        start = self.pos
        s = self.string()
        if s not in allowed:
            raise self.error(f"found {s!r}, expected one of {', '.join(map(repr, allowed))}", start)
        return s

    def tensor(self) -> np.ndarray:
        start = self.pos
        version = self.int()
        if version != 2:
            raise self.error(f"unsupported tensor version {version}", start)
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise self.error(f"negative tensor shape {shape}", start)
        count = int(np.prod(shape, dtype=np.int64))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise self.error(f"tensor of shape {shape} runs past the end of the data", start)
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos = end
        return arr.reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        start = self.pos
        version = self.int()
        if version != 1:
            raise self.error(f"unsupported alias_tensor version {version}", start)
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


@dataclass
class DlibLayer:
    """One layer of a dlib network, in data-flow order (input first).

    kind: "input", "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc",
        "tag_or_skip" (a tag or skip wrapper: no data in the file) or "loss".
    version: dlib's version string of the layer ("con_4", "affine_2", ...).
    arrays: weights as float32 numpy arrays in torch's layout
        (con: ``weight`` [out,in,kh,kw], ``bias`` [out]; affine: ``gamma``, ``beta`` [k];
        fc: ``weight`` [out,in], optional ``bias`` [out]).
    attrs: scalar settings (strides, paddings, window sizes, means, margins, ...).
    """

    kind: str
    version: str = ""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, object] = field(default_factory=dict)


def _slice_alias(r: DlibReader, params: np.ndarray, offset: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    flat = params.reshape(-1)
    n = int(np.prod(shape, dtype=np.int64))
    if offset + n > flat.size:
        raise r.error(f"{what} of shape {shape} at offset {offset} exceeds the {flat.size} layer parameters")
    return flat[offset:offset + n].reshape(shape).copy()


def _read_con(r: DlibReader, version: str) -> DlibLayer:
    params = r.tensor()
    num_filters = r.int()
    nr, nc = r.int(), r.int()
    stride_y, stride_x = r.int(), r.int()
    pad_y, pad_x = r.int(), r.int()
    filters = r.alias_tensor()
    biases = r.alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    use_bias = r.bool() if version in ("con_5", "con_6") else True
    use_relu = r.bool() if version == "con_6" else False
    if use_relu:
        raise r.error("con_ layers with a fused relu are not supported")
    if filters[0] != num_filters or filters[2:] != (nr, nc):
        raise r.error(f"con_ filter shape {filters} does not match {num_filters} filters of {nr}x{nc}")
    fsize = int(np.prod(filters))
    arrays = {"weight": _slice_alias(r, params, 0, filters, "con_ filters")}
    if use_bias:
        arrays["bias"] = _slice_alias(r, params, fsize, (num_filters,), "con_ biases")
    return DlibLayer("con", version, arrays, dict(num_filters=num_filters, kernel=(nr, nc),
                                                  stride=(stride_y, stride_x), padding=(pad_y, pad_x)))


def _read_affine(r: DlibReader, version: str) -> DlibLayer:
    if version in ("bn_con2", "bn_fc2"):  # a batch-norm layer: fold running stats as dlib does
        params = r.tensor()
        gamma_shape, beta_shape = r.alias_tensor(), r.alias_tensor()
        r.tensor(); r.tensor()  # batch means / invstds (training state)
        running_means, running_vars = r.tensor(), r.tensor()
        r.uint(); r.uint()  # num_updates, running_stats_window_size
        for _ in range(4):
            r.float()
        eps = r.float()
        n = int(np.prod(gamma_shape))
        g = _slice_alias(r, params, 0, (n,), "bn gamma")
        b = _slice_alias(r, params, n, (int(np.prod(beta_shape)),), "bn beta")
        gamma = g / np.sqrt(running_vars.reshape(-1) + eps)
        beta = b - gamma * running_means.reshape(-1)
        mode = "conv" if version == "bn_con2" else "fc"
        return DlibLayer("affine", version, {"gamma": gamma.astype(np.float32), "beta": beta.astype(np.float32)},
                         dict(mode=mode))
    params = r.tensor()
    gamma_shape, beta_shape = r.alias_tensor(), r.alias_tensor()
    mode = r.int()
    disabled = r.bool() if version == "affine_2" else False
    if disabled:
        raise r.error("disabled affine_ layers are not supported")
    n = int(np.prod(gamma_shape))
    arrays = {"gamma": _slice_alias(r, params, 0, (n,), "affine gamma"),
              "beta": _slice_alias(r, params, n, (int(np.prod(beta_shape)),), "affine beta")}
    return DlibLayer("affine", version, arrays, dict(mode="conv" if mode == 0 else "fc"))  # CONV_MODE = 0


def _read_pool(r: DlibReader, version: str) -> DlibLayer:
    nr, nc = r.int(), r.int()
    stride_y, stride_x = r.int(), r.int()
    pad_y, pad_x = r.int(), r.int()
    kind = "max_pool" if version.startswith("max") else "avg_pool"
    return DlibLayer(kind, version, attrs=dict(window=(nr, nc), stride=(stride_y, stride_x), padding=(pad_y, pad_x)))


def _read_fc(r: DlibReader, version: str) -> DlibLayer:
    num_outputs, num_inputs = r.uint(), r.uint()
    params = r.tensor()
    weights = r.alias_tensor()
    r.alias_tensor()  # biases shape
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    use_bias = r.bool() if version == "fc_3" else True
    has_bias = bias_mode == 0 and use_bias
    w = _slice_alias(r, params, 0, (num_inputs, num_outputs), "fc weights")
    arrays = {"weight": np.ascontiguousarray(w.T)}  # dlib computes x @ W, torch x @ weight.T
    if has_bias:
        arrays["bias"] = _slice_alias(r, params, num_inputs * num_outputs, (num_outputs,), "fc biases")
    del weights
    return DlibLayer("fc", version, arrays, dict(num_outputs=num_outputs, num_inputs=num_inputs))


def _read_relu(r: DlibReader, version: str) -> DlibLayer:
    if version == "relu_2" and r.bool():
        raise r.error("disabled relu_ layers are not supported")
    return DlibLayer("relu", version)


_LAYER_READERS = {
    "con_4": _read_con, "con_5": _read_con, "con_6": _read_con,
    "affine_": _read_affine, "affine_2": _read_affine, "bn_con2": _read_affine, "bn_fc2": _read_affine,
    "max_pool_2": _read_pool, "avg_pool_2": _read_pool,
    "fc_2": _read_fc, "fc_3": _read_fc,
    "relu_": _read_relu, "relu_2": _read_relu,
    "add_prev_": lambda r, v: DlibLayer("add_prev", v),
}


def _read_loss(r: DlibReader) -> DlibLayer:
    version = r.expect_string("loss_metric_", "loss_metric_2")
    if version == "loss_metric_":
        margin, dist_thresh = 0.1, 0.75  # dlib's hard-coded values for that version
    else:
        margin, dist_thresh = r.float(), r.float()
    return DlibLayer("loss", version, attrs=dict(margin=margin, distance_threshold=dist_thresh))


def _read_input(r: DlibReader) -> DlibLayer:
    version = r.expect_string("input_rgb_image_sized")
    means = (r.float(), r.float(), r.float())
    nr, nc = r.uint(), r.uint()
    return DlibLayer("input", version, attrs=dict(mean_rgb=means, size=(nr, nc)))


def read_dlib_network(data: bytes, source: str = "<bytes>") -> list[DlibLayer]:
    """Parse a serialised ``loss_metric`` network: layer records in data-flow order.

    The list starts with the input layer and ends with the loss; ``tag``/``skip`` wrappers
    appear as ``"tag_or_skip"`` records where they sit.

    Raises:
        DlibFormatError (a ValueError) naming ``source`` when the bytes are malformed.
    """
    r = DlibReader(data, source)
    loss_version = r.int()
    if loss_version != 1:
        raise r.error(f"expected add_loss_layer version 1, found {loss_version}", 0)
    loss = _read_loss(r)
    # Versions of the wrappers, output → input; the input layer's name (a string, whose
    # length is > 3) ends the list.
    wrappers: list[int] = []
    while True:
        v = r.peek_int()
        if v > 3:
            break
        wrappers.append(r.int())
        if len(wrappers) > 100_000:
            raise r.error("too many nested layers")
    if not wrappers:
        raise r.error("no layers after the loss")
    inp = _read_input(r)
    layers = [inp]
    for i, version in enumerate(reversed(wrappers)):  # input → output
        innermost = i == 0
        if version == 1 and not innermost:  # add_tag_layer / add_skip_layer: nothing stored
            layers.append(DlibLayer("tag_or_skip"))
            continue
        if not (1 <= version <= 3):
            raise r.error(f"unexpected layer wrapper version {version}")
        start = r.pos
        name = r.string()
        reader = _LAYER_READERS.get(name)
        if reader is None:
            raise r.error(f"unsupported layer type {name!r}", start)
        layer = reader(r, name)
        layer.attrs["offset"] = start
        # add_layer bookkeeping: setup flag, two state flags, cached tensors.
        r.bool(); r.bool(); r.bool()
        r.tensor(); r.tensor()  # x_grad, cached_output
        if innermost:  # the add_layer specialisation over the input layer
            if version < 2:
                raise r.error(f"unexpected input add_layer version {version}")
            r.tensor()  # grad_final
            if version >= 3:
                r.uint()  # sample expansion factor
        elif version == 2:
            r.tensor()  # params_grad
        layers.append(layer)
    if r.pos != len(r.data):
        raise r.error(f"{len(r.data) - r.pos} trailing bytes after the network")
    layers.append(loss)
    return layers


def read_dlib_resnet_weights(path: str | os.PathLike) -> list[DlibLayer]:
    """Read ``dlib_face_recognition_resnet_model_v1.dat`` (or any dlib ``loss_metric`` net).

    Returns the layer records in data-flow order (input first, loss last).

    Raises:
        FileNotFoundError: no such file.
        DlibFormatError (a ValueError) naming the file: malformed or unsupported content.
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    return read_dlib_network(data, source=path)
