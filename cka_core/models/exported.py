"""torch.export programs (``.pt2``, written by ``torch.export.save``), checked before they are loaded.

``torch.export.load`` is not safe on an untrusted file: it unpickles weights and constants marked
as pickled (and falls back to a full unpickler for example inputs), loads compiled AOTInductor
libraries, compiles the program's guard code as Python, resolves operator names by attribute
lookup from ``torch`` (which reaches ``torch.os``) and parses symbolic shapes with sympy (which
evaluates). So the archive is read first, by the one strict zip reader (:mod:`cka_core.io.safezip`: no
duplicate names or second directory that would show torch other members than the checks saw), as
JSON and raw tensor bytes, and refused unless every member is one the current format writes for a
plain program, no weight or constant is pickled or claims more values than its file holds or the
caps allow, no custom object is stored, the guard code is empty, every operator is an ATen/prims
operator or a Python operator, every symbolic expression uses only symbols, numbers and arithmetic,
and the example inputs (a nested torch.save archive, validated alike) load with ``weights_only=True``
as plain tensors their storage backs. ``torch.export.load`` is then given only a fresh archive
rebuilt by torch's own writer from the validated contents, with empty example inputs (nothing left
to unpickle); the checked example inputs are attached to the program afterwards.

Layers are the program's modules, named as in the original model (``torch.export.unflatten``
rebuilds the module hierarchy), and captured with forward hooks while the program runs.
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

from ..errors import RepresentationError
from ..io.safetensors_files import unique_keys
from ..io.safezip import open_archive
from ..io import caps as model_caps
from . import reduction
from .base import default_layers, Feed, Layer, LoadedModel
from .inputs import ARRAY, Examples, IMAGE, TEXT
from .onnx_graph import images_as_tensor
from .tokenizer import load_tokenizer, WordTokenizer

MAX_MEMBERS = 100_000
MAX_JSON_BYTES = 256 * 2**20
MAX_INPUT_MEMBERS = 1_000  # records of the example inputs' own torch.save archive
SAMPLE_INPUTS = "data/sample_inputs/model.pt"
#: Records torch's writer adds itself when the archive is rebuilt (so they are not copied).
WRITER_RECORDS = (".data/version", ".data/serialization_id", "byteorder")
#: What torch.export.save writes for a plain program named "model" (everything else is refused).
ALLOWED_MEMBERS = re.compile(
    r"^(\.data/version|\.data/serialization_id|archive_format|archive_version|byteorder|models/model\.json|"
    r"data/weights/weight_\d+|data/weights/model_weights_config\.json|data/constants/tensor_\d+|"
    r"data/constants/model_constants_config\.json|data/sample_inputs/model\.pt)$")
#: Each payload config, the directory of its payloads, and the only file names its entries may give.
PAYLOADS = (("data/weights/model_weights_config.json", "data/weights/", re.compile(r"^weight_\d+$")),
            ("data/constants/model_constants_config.json", "data/constants/", re.compile(r"^tensor_\d+$")))
ALLOWED_TARGET = re.compile(r"^(torch\.ops\.(aten|prims)\.\w+(\.\w+)?|_operator\.\w+)$")
OPERATORS = {"getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "neg", "pow", "and_", "or_", "not_",
             "eq", "ne", "lt", "le", "gt", "ge", "abs"}
SYMBOL_NAMES = re.compile(r"^[a-z]\d+$")  # s0, u1, ...: torch's shape symbols
#: What a symbolic shape expression may call (sympy's srepr of torch's shape arithmetic).
SYMPY_CALLS = {"Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "FloorDiv", "CeilDiv", "CleanDiv",
               "PythonMod", "Max", "Min", "Abs", "Eq", "Ne", "Le", "Lt", "Ge", "Gt", "And", "Or", "Not", "IntTrueDiv",
               "FloatTrueDiv", "TruncToInt", "ToFloat", "floor", "ceiling", "sqrt", "Piecewise", "ExprCondPair"}
SYMPY_NAMES = {"oo", "zoo", "nan", "true", "false", "True", "False"}
SYMBOL_ASSUMPTIONS = {"positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "nonzero",
                      "commutative"}


FIX = "save the program again with torch.export.save (a plain exported program, no AOTInductor package, no custom objects)"


def _refuse(filename: str, why: str) -> RepresentationError:
    return RepresentationError(f"{filename} is refused: {why}. {FIX[0].upper()}{FIX[1:]}.")


@dataclass(frozen=True)
class Checked:
    """A .pt2 archive that passed :func:`check_archive`: its members' validated contents (by name inside
    the archive's folder, the example inputs and the records torch's writer adds left out) and its
    example inputs, loaded as plain tensors."""

    members: dict[str, bytes] = field(repr=False)
    example: tuple


def check_archive(data: bytes, filename: str) -> Checked:
    """Raise RepresentationError unless ``data`` is a .pt2 archive that can be loaded without
    running code from it (see the module docstring); its validated contents otherwise."""
    archive = open_archive(data, filename, max_members=MAX_MEMBERS, fix=FIX)
    prefix = archive.members[0].name.split("/", 1)[0] + "/" if archive.members else ""
    for member in archive.members:
        inner = member.name[len(prefix):] if member.name.startswith(prefix) else None
        if inner is None or not ALLOWED_MEMBERS.match(inner):
            raise _refuse(filename, f"it holds {member.name!r}, which a plain exported program does not")
        if inner.endswith(".json") and member.size > MAX_JSON_BYTES:
            raise _refuse(filename, f"{member.name!r} is too large")
    sizes = {m.name[len(prefix):]: m.size for m in archive.members}

    def read(inner: str) -> bytes:
        if inner not in sizes:
            raise _refuse(filename, f"it has no {inner!r}")
        return archive.read(prefix + inner)

    def json_of(inner: str):
        content = read(inner)  # its own RepresentationError (a ValueError) is not a JSON error
        try:
            return json.loads(content, object_pairs_hook=unique_keys)
        except (UnicodeDecodeError, ValueError, RecursionError):  # json.JSONDecodeError is a ValueError
            raise _refuse(filename, f"{inner!r} is not valid JSON (or repeats a key)") from None

    if read("byteorder") != b"little":
        raise _refuse(filename, "its tensors are not stored little-endian")
    values = sum(_payload_values(json_of(config), directory, names, sizes, filename)
                 for config, directory, names in PAYLOADS if config in sizes)
    caps = model_caps.current()
    if values > caps.parameters:
        raise _refuse(filename, f"its weights and constants hold {values:,} values, over the limit of "
                                f"{caps.parameters:,} (CKA_MODEL_PARAMETERS)")
    _check_program(json_of("models/model.json"), filename)
    example = _example_inputs(read(SAMPLE_INPUTS), filename)
    members = {inner: read(inner) for inner in sizes if inner != SAMPLE_INPUTS and inner not in WRITER_RECORDS}
    return Checked(members, example)


def _payload_values(config, directory: str, names: re.Pattern, sizes: dict[str, int], filename: str) -> int:
    """Values the tensors of one payload config (weights or constants) will hold, after checking that
    none is pickled or a custom object, each names a raw tensor file of the archive, and its shape,
    strides and offset stay within that file (torch builds a zero tensor of the declared shape for
    an empty file, and views the file as the declared shape otherwise)."""
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(filename, f"its {directory} config is malformed")
    total = 0
    for fqn, meta in entries.items():
        if (not isinstance(meta, dict) or meta.get("use_pickle") is not False
                or not names.match(str(meta.get("path_name", "")))):
            raise _refuse(filename, f"{str(fqn)[:80]!r} is stored as a pickle or a custom object")
        record = directory + meta["path_name"]
        tensor = meta.get("tensor_meta") if isinstance(meta.get("tensor_meta"), dict) else {}
        shape = _ints(tensor.get("sizes"))
        strides = _ints(tensor.get("strides"))
        offset = _ints([tensor.get("storage_offset")])
        dtype = _SERIALIZE_TO_TORCH_DTYPE.get(tensor.get("dtype")) if isinstance(tensor.get("dtype"), int) else None
        if record not in sizes or shape is None or strides is None or offset is None or len(strides) != len(shape) \
                or dtype is None:
            raise _refuse(filename, f"{str(fqn)[:80]!r} has no tensor file or a malformed shape")
        values = math.prod(shape)
        extent = offset[0] + sum((n - 1) * s for n, s in zip(shape, strides)) + 1 if values else 0
        if sizes[record] and extent * dtype.itemsize > sizes[record]:
            raise _refuse(filename, f"{str(fqn)[:80]!r} claims more values than its file {record!r} holds")
        total += values
    return total


def _ints(values) -> list[int] | None:
    """[n, ...] from torch's [{"as_int": n}, ...] when every n is a non-negative integer, else None."""
    if not isinstance(values, list) or len(values) > 64:
        return None
    out = [v.get("as_int") if isinstance(v, dict) and set(v) == {"as_int"} else None for v in values]
    return out if all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in out) else None


def _check_program(program, filename: str) -> None:
    """The program's JSON: no guard code, operator or symbolic expression that loading would run."""
    if not isinstance(program, dict) or "graph_module" not in program:
        raise _refuse(filename, "models/model.json holds no program")
    for guard in program.get("guards_code") or ():
        if not _safe_guard(guard):
            raise _refuse(filename, f"its guard {str(guard)[:80]!r} is Python beyond comparisons of input sizes "
                                    "(loading compiles guards as code)")
    for target in _values_of(program, "target"):
        if not isinstance(target, str) or not ALLOWED_TARGET.match(target) or (
                target.startswith("_operator.") and target.split(".", 1)[1] not in OPERATORS):
            raise _refuse(filename, f"it calls {str(target)[:80]!r}, which is not an ATen operator")
    constraints = program.get("range_constraints") or {}
    if not isinstance(constraints, dict) or not all(SYMBOL_NAMES.match(str(k)) for k in constraints):
        raise _refuse(filename, "its range constraints name something other than shape symbols")
    for expression in _values_of(program, "expr_str"):
        if not _safe_expression(expression):
            raise _refuse(filename, f"the shape expression {str(expression)[:80]!r} is not plain arithmetic")


def _example_inputs(data: bytes, filename: str) -> tuple:
    """The program's example inputs ``(args, kwargs)``, from their own torch.save archive: validated by
    the strict reader (so torch reads the records checked here), loaded with ``weights_only=True``
    (torch.export.load would retry with a full unpickler), and refused unless every input is a plain
    tensor whose shape its storage backs (a stride-0 view of a huge shape in a few bytes is refused
    from its metadata, before anything runs on it) within ``caps.activation_bytes``."""
    where = f"{filename}:{SAMPLE_INPUTS}"
    caps = model_caps.current()
    archive = open_archive(data, where, max_members=MAX_INPUT_MEMBERS, fix=FIX)
    if sum(m.size for m in archive.members) > caps.activation_bytes:
        raise _refuse(filename, "its example inputs are larger than the activation limit (CKA_MODEL_ACTIVATION_MB)")
    for member in archive.members:  # every record inflates as declared before torch reads it
        for _ in archive.chunks(member.name):
            pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            example = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure here would make torch fall back to a full unpickler
        raise _refuse(filename, "its example inputs do not load as plain tensors") from None
    if not (isinstance(example, tuple) and len(example) == 2 and isinstance(example[0], tuple)
            and isinstance(example[1], dict) and all(isinstance(k, str) for k in example[1])):
        raise _refuse(filename, "its example inputs are not (args, kwargs)")
    for tensor in (*example[0], *example[1].values()):
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided or tensor.is_quantized \
                or tensor.is_nested:
            raise _refuse(filename, "its example inputs are not all plain tensors")
        if tensor.numel() * tensor.element_size() > min(caps.activation_bytes, tensor.untyped_storage().nbytes()):
            raise _refuse(filename, f"an example input of shape {tuple(tensor.shape)} is larger than the data "
                                    "stored for it (a stride-0 view) or than the activation limit")
    return example


def _canonical(members: dict[str, bytes]) -> bytes:
    """A fresh archive written by torch's own writer from validated contents, with empty example inputs
    (so torch.export.load has nothing to unpickle): the only bytes torch.export.load is given."""
    buffer = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(buffer)
    writer.set_min_version(6)  # what torch.export.save sets
    for name, content in members.items():
        writer.write_record(name, content, len(content))
    writer.write_record(SAMPLE_INPUTS, b"", 0)
    writer.write_end_of_file()
    return buffer.getvalue()


def _values_of(tree, key: str) -> Iterator:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key:
                    yield v
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)


GUARD_NODES = (ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.BinOp,
               ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
               ast.Constant, ast.Name, ast.Load, ast.Subscript, ast.Call, ast.Attribute)
SIZE_METHODS = {"size", "stride", "dim", "storage_offset"}


def _expression_tree(text, limit: int) -> ast.Expression | None:
    """``text`` parsed as one Python expression (never evaluated), or None if it is not one."""
    if not isinstance(text, str) or len(text) > limit:
        return None
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None


def _safe_guard(text) -> bool:
    """Whether a guard is only comparisons and arithmetic of input sizes, like
    ``L['attention_mask'].size()[1] == L['input_ids'].size()[1]`` (what torch.export writes)."""
    tree = _expression_tree(text, 2_000)
    if tree is None:
        return False
    for node in ast.walk(tree):
        if not isinstance(node, GUARD_NODES):
            return False
        if isinstance(node, ast.Name) and node.id != "L":
            return False
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, str)):
            return False
        if isinstance(node, ast.Attribute) and node.attr not in SIZE_METHODS:
            return False
        if isinstance(node, ast.Call) and (node.args or node.keywords or not isinstance(node.func, ast.Attribute)):
            return False
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Subscript)
                                                    and isinstance(node.value.value, ast.Name)):
            return False
    return True


def _safe_expression(text) -> bool:
    """Whether a symbolic shape is only sympy arithmetic of shape symbols and numbers, like
    ``Mul(Integer(32), Symbol('s53', positive=True, integer=True))`` (sympy evaluates what it parses)."""
    if isinstance(text, str) and SYMBOL_NAMES.match(text):
        return True
    tree = _expression_tree(text, 5_000)
    if tree is None:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in SYMPY_CALLS:
                return False
            if any(k.arg not in SYMBOL_ASSUMPTIONS or not isinstance(k.value, ast.Constant)
                   or not isinstance(k.value.value, bool) for k in node.keywords):
                return False
            if node.func.id == "Symbol" and not (node.args and isinstance(node.args[0], ast.Constant)
                                                  and isinstance(node.args[0].value, str)
                                                  and SYMBOL_NAMES.match(node.args[0].value)):
                return False
        elif isinstance(node, ast.Name):
            if node.id not in SYMPY_CALLS and node.id not in SYMPY_NAMES:
                return False
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool)):
                return False
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub):
                return False
        elif not isinstance(node, (ast.Expression, ast.Load, ast.USub, ast.keyword)):
            return False
    return True


class ExportedModel(LoadedModel):
    format = "torch.export"

    def __init__(self, data: bytes, filename: str, *, tokenizer: bytes | None = None):
        self.name = filename.rsplit("/", 1)[-1].removesuffix(".pt2")
        self.digest = hashlib.sha256(data + (tokenizer or b"")).hexdigest()
        checked = check_archive(data, filename)
        try:
            program = torch.export.load(io.BytesIO(_canonical(checked.members)))
            program.example_inputs = checked.example
            self.module = torch.export.unflatten(program)
        except Exception as error:  # noqa: BLE001 - torch raises many types while deserialising
            raise RepresentationError(f"{filename} could not be loaded as an exported program "
                                      f"({type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''})"
                                      "; save it again with this version of torch (2.13).") from None
        signature = program.module_call_graph[0].signature
        self.input_names = tuple(getattr(signature, "forward_arg_names", None) or
                                 [s.arg.name for s in program.graph_signature.input_specs
                                  if s.kind == torch.export.graph_signature.InputKind.USER_INPUT])
        self.example = program.example_inputs
        self._positional = self.input_names[:len(self.example[0])]
        self.tokenizer: WordTokenizer | None = load_tokenizer(tokenizer, filename) if tokenizer else None
        self.input_kind = TEXT if self.tokenizer else IMAGE if self._image_input() else ARRAY
        modules = {name: m for name, m in self.module.named_modules() if name}
        probe = self._capture(self._example_feed(), tuple(modules))
        self.layers = tuple(Layer(name, tuple(v.shape[1:]), reduction.layer_kind(tuple(v.shape[1:]), self.input_kind))
                            for name, v in probe.items() if v.ndim >= 2 and np.issubdtype(v.dtype, np.floating))
        if not self.layers:
            raise RepresentationError(f"{filename}: no module returns a float tensor; nothing to compare.")
        self.default_layers = default_layers(self.layers)

    def _example_tensors(self) -> dict[str, torch.Tensor]:
        args, kwargs = self.example
        return {**dict(zip(self.input_names, args)), **kwargs}

    def _image_input(self) -> bool:
        tensors = self._example_tensors()
        if len(tensors) != 1:
            return False
        t = next(iter(tensors.values()))
        return t.dim() == 4 and t.shape[1] in (1, 3) and t.is_floating_point()

    def _example_feed(self) -> Feed:
        return Feed(self._example_tensors())

    def _capture(self, feed: Feed, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
        modules = dict(self.module.named_modules())
        seen: dict[str, torch.Tensor] = {}

        def hook_for(name):
            def hook(_module, _inputs, output):
                tensor = output if isinstance(output, torch.Tensor) else next(
                    (o for o in (output if isinstance(output, (tuple, list)) else ()) if isinstance(o, torch.Tensor)),
                    None)
                if tensor is not None and name not in seen:
                    seen[name] = tensor.detach().to("cpu", copy=True)
            return hook

        handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
        try:
            tensors = dict(feed.tensors)
            with torch.no_grad():
                self.module(*[tensors.pop(name) for name in self._positional], **tensors)
        except Exception as error:  # noqa: BLE001
            raise RepresentationError(f"{self.name} failed on these inputs ({type(error).__name__}: "
                                      f"{str(error).splitlines()[0][:300] if str(error) else ''}); exported programs "
                                      "run only on inputs of the shapes and types they were exported for "
                                      "(export with dynamic_shapes for other batch sizes or lengths).") from None
        finally:
            for handle in handles:
                handle.remove()
        return {name: seen[name].float().numpy() for name in layers if name in seen}

    def feed(self, examples: Examples) -> Feed:
        example = self._example_tensors()
        if examples.kind == TEXT and self.tokenizer is not None:
            ids, mask = self.tokenizer.encode(list(examples.texts))
            tensors = {"input_ids": torch.from_numpy(ids)}
            if "attention_mask" in self.input_names:
                tensors["attention_mask"] = torch.from_numpy(mask)
            if "token_type_ids" in self.input_names:
                tensors["token_type_ids"] = torch.zeros_like(tensors["input_ids"])
            return Feed({k: v.to(example[k].dtype) if k in example else v for k, v in tensors.items()}, mask)
        if examples.kind == IMAGE and self.input_kind == IMAGE:
            (name, t), = example.items()
            pixels = images_as_tensor(examples.images, t.shape[1], t.shape[2], t.shape[3])
            return Feed({name: torch.from_numpy(pixels).to(t.dtype)})
        if examples.kind == ARRAY:
            arrays = dict(examples.arrays)
            if len(example) == 1 and len(arrays) == 1:
                arrays = {next(iter(example)): next(iter(arrays.values()))}
            missing = [name for name in example if name not in arrays]
            if missing:
                raise RepresentationError(f"{self.name} needs the inputs {', '.join(example)}; the arrays lack "
                                          f"{', '.join(missing)}.")
            return Feed({k: torch.as_tensor(np.asarray(arrays[k])).to(example[k].dtype) for k in example},
                        arrays.get("attention_mask"))
        raise RepresentationError(f"{self.name} reads {self.input_kind}s"
                                  + (" (give its tokenizer.json with the program)" if self.input_kind == ARRAY else "")
                                  + f", not {examples.kind}s.")

    def run(self, feed: Feed, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
        captured = self._capture(feed, layers)
        missing = [name for name in layers if name not in captured]
        if missing:
            raise RepresentationError(f"{self.name}: module {missing[0]!r} returned no tensor.")
        return captured
