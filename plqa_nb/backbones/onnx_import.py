"""Load an ONNX face-recognition network as two PyTorch modules: ``trunk`` (crop → features) and ``head``.

Steps, run once per file and cached (:func:`load_onnx_split`):

1. read the file (``onnx.load``); a file that is not ONNX raises ``ValueError`` naming it;
2. clean the graph: drop declared inputs that no node reads (and inputs that are initialisers), which
   OpenCV's ``FaceRecognizerSF`` refuses;
3. fold constants: every node whose inputs are all initialisers (``DequantizeLinear``, block-quantised
   included, and the ``Reshape`` of its result, say) is evaluated once with ``onnx.reference`` and replaced
   by a float initialiser, so int8 weights become float32 parameters that onnx2torch can convert;
4. convert with ``onnx2torch`` (an operator it cannot convert raises ``ValueError`` naming the operator(s)
   and the file);
5. split the converted ``torch.fx`` graph at the head node: by default the last ``Gemm``/``MatMul`` (the head
   then holds it and whatever follows, a ``BatchNormalization`` say); or a node the user names.

Steps 1-3 (and the opset lowering of step 4) are cached as a plain ONNX file,
``<cache_dir()>/onnx-<SHA-1 of the file>.<CONVERSION_VERSION>.onnx``, written atomically; an unreadable or stale
one is rebuilt. Loading it runs steps 4-5 only (no pickle is ever loaded).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from torch import fx

from .cache import cache_dir, write_cache

#: bump when the cleaning, folding or splitting changes: old cache files are then ignored.
CONVERSION_VERSION = "onnx1"

# Operators whose output is not a function of their inputs: never folded.
_RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


@dataclass
class OnnxSplit:
    """A converted ONNX network split in two.

    trunk: crops [B, C, H, W] (the graph's own input scaling) → features [B, F];
    head: features [B, F] → raw embedding [B, D];
    head_node: the ONNX node where the head starts (its name, or its operator and index when unnamed).
    """

    trunk: fx.GraphModule
    head: fx.GraphModule
    head_node: str


def read_onnx(path: str | os.PathLike):
    """The ``onnx.ModelProto`` in ``path``; ``ValueError`` naming the file if it is not ONNX."""
    import onnx

    path = os.fspath(path)
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node:
        raise ValueError(f"{path} is not an ONNX model (no graph nodes)")
    return model


def clean_graph(model) -> None:
    """Drop, in place, graph inputs that no node reads or that are initialisers (constants); IR version 4 on is
    what lets initialisers stay out of the inputs."""
    model.ir_version = max(model.ir_version, 4)
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    constants = {init.name for init in graph.initializer}
    keep = [i for i in graph.input if i.name in used and i.name not in constants]
    del graph.input[:]
    graph.input.extend(keep)


def fold_constants(model) -> int:
    """Replace, in place, every node whose inputs are all constants by float initialisers (``DequantizeLinear``
    with or without a block size, ``Reshape``/``Transpose`` of weights, ``Constant``). Returns the count folded."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    constants = {init.name for init in graph.initializer}
    opset = [o for o in model.opset_import]
    folded, kept = 0, []
    values = {init.name: init for init in graph.initializer}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type in _RANDOM_OPS or node.domain not in ("", "ai.onnx") or not all(n in constants for n in inputs):
            kept.append(node)
            continue
        one = onnx.helper.make_model(
            onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_tensor_value_info(o, 0, None)
                                                         for o in node.output],
                                   initializer=[values[n] for n in dict.fromkeys(inputs)]),
            opset_imports=opset, ir_version=model.ir_version)
        results = ReferenceEvaluator(one).run(None, {})
        for name, array in zip(node.output, results):
            if array.dtype.kind == "f":
                array = array.astype("float32")
            tensor = numpy_helper.from_array(array, name)
            graph.initializer.append(tensor)
            values[name] = tensor
            constants.add(name)
        folded += 1
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return folded


def _unconvertible(model) -> list[str]:
    """The operators of ``model`` that onnx2torch has no converter for at the model's opset."""
    from onnx2torch.node_converters.registry import get_converter

    opset = _opset(model)
    missing = set()
    for node in model.graph.node:
        try:
            get_converter(operation_type=node.op_type, version=opset, domain=node.domain or "")
        except NotImplementedError:
            missing.add(node.op_type)
    return sorted(missing)


def _opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def lower_for_onnx2torch(model, source: str):
    """``model`` itself when onnx2torch converts every operator at its opset; else the model lowered with ONNX's own
    version converter to the newest opset where every operator converts (Flatten is opset 21 in a 21 graph, and
    onnx2torch 1.5 knows it up to 13: the operator is the same). ``ValueError`` naming the operators and ``source``
    when no such opset exists."""
    from onnx import version_converter

    missing = _unconvertible(model)
    if not missing:
        return model
    never = set(missing)  # the operators no reachable opset converts: the ones to name
    for target in range(_opset(model) - 1, 6, -1):
        try:
            lowered = version_converter.convert_version(model, target)
        except Exception:  # no adapter down to this opset: lower ones fail too
            break
        left = _unconvertible(lowered)
        if not left:
            return lowered
        never &= set(left)
    named = sorted(never) or missing
    raise ValueError(f"{source}: onnx2torch cannot convert the operator(s) {', '.join(named)} (opset "
                     f"{_opset(model)})")


def convert(model, source: str) -> fx.GraphModule:
    """onnx2torch's conversion of a model every operator of which converts (see ``lower_for_onnx2torch``)."""
    from onnx2torch import convert as onnx2torch_convert

    try:
        return onnx2torch_convert(model)
    except Exception as exc:
        raise ValueError(f"{source}: onnx2torch failed to convert ({type(exc).__name__}: {exc})") from exc


def head_index(model, head: str | None, source: str) -> int:
    """Index (in graph order) of the ONNX node where the head starts: the node named ``head``, else the last
    Gemm/MatMul. ``ValueError`` naming ``source`` when there is none."""
    nodes = list(model.graph.node)
    if head is not None:
        found = [i for i, node in enumerate(nodes) if node.name == head]
        if not found:
            raise ValueError(f"{source} has no node named '{head}' to start the head at")
        return found[0]
    linear = [i for i, node in enumerate(nodes) if node.op_type in ("Gemm", "MatMul")]
    if not linear:
        raise ValueError(f"{source} has no Gemm or MatMul node to split the head at: name one (head=NODE)")
    return linear[-1]


def split_graph(module: fx.GraphModule, index: int, source: str) -> tuple[fx.GraphModule, fx.GraphModule]:
    """Cut onnx2torch's graph before the module of ONNX node number ``index`` (onnx2torch makes one module per node,
    in graph order): (trunk: input → that node's first input, flattened to [B, F]; head: features → output).
    ``ValueError`` naming ``source`` when the head reads anything but the features and constants."""
    nodes = list(module.graph.nodes)
    target = [n for n in nodes if n.op == "call_module"][index]
    features = target.args[0]
    trunk_nodes, stack = set(), [features]
    while stack:
        n = stack.pop()
        if n not in trunk_nodes:
            trunk_nodes.add(n)
            stack.extend(n.all_input_nodes)
    trunk_graph, env = fx.Graph(), {}
    for n in nodes:
        if n in trunk_nodes:
            env[n] = trunk_graph.node_copy(n, lambda a: env[a])
    trunk_graph.output(trunk_graph.call_method("flatten", (env[features], 1)))
    head_graph = fx.Graph()
    env = {features: head_graph.placeholder("features")}
    for n in nodes:
        if n in trunk_nodes:
            if n is not features and n.op != "get_attr" and any(u not in trunk_nodes for u in n.users):
                raise ValueError(f"{source}: the head at '{target.target}' reads '{n.name}' besides the features; "
                                 "name another head node")
        elif n.op == "output":
            head_graph.output(fx.map_arg(n.args[0], lambda a: env[a]))
        else:
            for arg in n.all_input_nodes:
                if arg not in env and arg.op == "get_attr":
                    env[arg] = head_graph.node_copy(arg)
            env[n] = head_graph.node_copy(n, lambda a: env[a])
    return fx.GraphModule(module, trunk_graph), fx.GraphModule(module, head_graph)


def file_sha1(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cleaned_onnx_bytes(path: str | os.PathLike) -> bytes:
    """The file with unused graph inputs dropped (what OpenCV's ``FaceRecognizerSF`` accepts), serialised."""
    model = read_onnx(path)
    clean_graph(model)
    return model.SerializeToString()


def prepare_onnx(path: str | os.PathLike):
    """Read, clean, fold and (if need be) lower ``path``: a float ``onnx.ModelProto`` that onnx2torch converts."""
    source = os.fspath(path)
    model = read_onnx(source)
    clean_graph(model)
    fold_constants(model)
    return lower_for_onnx2torch(model, source)


def prepared_cache_path(path: str | os.PathLike) -> str:
    """Where the prepared (float, convertible) graph of ``path`` is cached: keyed by the file's SHA-1."""
    return os.path.join(cache_dir(), f"onnx-{file_sha1(path)}.{CONVERSION_VERSION}.onnx")


def load_prepared_onnx(path: str | os.PathLike):
    """``prepare_onnx(path)``, cached under :func:`prepared_cache_path` (written atomically). An unreadable cache
    is prepared again; an unwritable folder only warns."""
    import onnx

    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"ONNX model {source} does not exist")
    cache = prepared_cache_path(source)
    if os.path.isfile(cache):
        try:
            model = onnx.load(cache)
            onnx.checker.check_model(model)
            if _unconvertible(model):
                raise ValueError("holds operators onnx2torch cannot convert")
            return model
        except Exception as exc:  # stale or damaged cache: prepare again
            warnings.warn(f"ignoring unreadable cache {cache} ({type(exc).__name__}: {exc}); converting again")
    model = prepare_onnx(source)
    write_cache(cache, lambda tmp: Path(tmp).write_bytes(model.SerializeToString()), "the converted ONNX model")
    return model


def load_onnx_split(path: str | os.PathLike, head: str | None = None) -> OnnxSplit:
    """The network in ``path`` as PyTorch modules split at ``head`` (None: the last Gemm/MatMul), eval mode.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not ONNX, no head to split at, or operators onnx2torch cannot convert (named).
    """
    source = os.fspath(path)
    model = load_prepared_onnx(source)
    index = head_index(model, head, source)
    trunk, head_module = split_graph(convert(model, source), index, source)
    node = model.graph.node[index]
    return OnnxSplit(trunk.eval(), head_module.eval(), node.name or f"{node.op_type} (node {index})")


__all__ = ["CONVERSION_VERSION", "OnnxSplit", "clean_graph", "cleaned_onnx_bytes", "convert", "file_sha1",
           "fold_constants", "head_index", "load_onnx_split", "load_prepared_onnx", "lower_for_onnx2torch",
           "prepare_onnx", "prepared_cache_path", "read_onnx", "split_graph"]
