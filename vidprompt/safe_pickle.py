"""Read files written by ``torch.save`` without running any code they carry.

A pickle is a program: loading one with plain ``pickle``/``torch.load`` may call any function it names. The
published AIM and PromptCLIP weights are such files, so they are read by :func:`load_pickled`:

- PyTorch's zip format (every ``torch.save`` since PyTorch 1.6): vidprompt's own restricted unpickler reads
  ``data.pkl`` and the storages from the archive. It resolves only the names that rebuild tensors and plain
  containers; every other name the file asks for becomes an :class:`Opaque` stand-in whose "calls" record
  their arguments and run nothing. A file that asks ``os.system`` to run a command yields an ``Opaque``
  holding the command string. Storages must be stored uncompressed (as ``torch.save`` writes them) and of
  exactly the size their tensors declare, so a small file cannot claim gigabytes.
  ``torch.load(weights_only=True)`` is not used for these: it refuses the objects mmcv puts in a
  checkpoint's ``meta``, and it is only as safe as the installed PyTorch (releases before 2.6 could be made
  to run code through it), while this reader allow-lists less and is tested here.
- The old format: ``torch.load(weights_only=True)`` on a PyTorch recent enough to trust with it
  (:data:`WEIGHTS_ONLY_TRUSTED_FROM`), else refused.
"""

from __future__ import annotations

import io
import math
import pickle
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from .errors import VidpromptError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_OPCODE = 0x80
# PyTorch releases whose weights-only unpickler has no known way around it (for old-format files only).
WEIGHTS_ONLY_TRUSTED_FROM = (2, 10)


class Opaque:
    """Something a pickle asked to build that is neither a tensor nor a plain container, kept as inert data.

    ``name`` is the ``module.qualname`` the file named; ``args`` the arguments it was called with and
    ``state`` what it would have been given by ``__setstate__``. Nothing of the named object is imported."""

    name = "?"

    def __new__(cls, *args, **kwargs):  # pickle's NEWOBJ calls this without __init__
        self = super().__new__(cls)
        self.args, self.kwargs, self.state = args, kwargs, None
        self.items = []  # what a pickled dict or list subclass held
        return self

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items.append((key, value))

    def append(self, value):
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<{self.name} (not loaded)>"


def _opaque_type(module: str, name: str) -> type:
    """A fresh ``Opaque`` subclass standing for ``module.name`` (pickle's NEWOBJ needs a type)."""
    return type("Opaque", (Opaque,), {"name": f"{module}.{name}"})


class _PlainOrderedDict(OrderedDict):
    """``collections.OrderedDict`` as a pickle may rebuild it, minus what it may set on the instance: a state
    dict's ``_metadata`` (or anything else) is dropped, so no attribute can shadow a dict method."""

    __slots__ = ()

    def __setstate__(self, state):
        pass


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _Unpickler(pickle.Unpickler):
    """Resolves only the names that rebuild tensors and plain containers; the rest become ``Opaque``."""

    def __init__(self, file, read_storage):
        super().__init__(file)
        self._read_storage = read_storage
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name == "Size":
            return torch.Size
        if module == "collections" and name == "OrderedDict":
            return _PlainOrderedDict
        return _opaque_type(module, name)

    def persistent_load(self, pid):
        """``('storage', storage type, key, location, element count)``: the flat tensor ``data/<key>``."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[4], int) and pid[4] >= 0):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        dtype, key, numel = pid[1].dtype, str(pid[2]), pid[4]
        if key not in self._storages:
            itemsize = torch.empty((), dtype=dtype).element_size()
            self._storages[key] = self._read_storage(key, numel * itemsize).view(dtype)
        return self._storages[key]


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """A tensor viewing ``storage`` (a flat tensor from :meth:`_Unpickler.persistent_load`), bounds-checked."""
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor without storage")
    size, stride = tuple(size), tuple(stride)
    if not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)) or len(size) != len(stride):
        raise pickle.UnpicklingError("a tensor with a malformed shape")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.numel():
        raise pickle.UnpicklingError("a tensor reaching past its storage")
    if math.prod(size) > storage.numel():  # stride-0 views: a few bytes claiming a huge tensor
        raise pickle.UnpicklingError(f"a tensor of {math.prod(size)} elements on a storage of {storage.numel()}")
    return torch.as_strided(storage, size, stride, offset)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


def _load_restricted(path: Path) -> object:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise VidpromptError(f"{path}: a zip archive but not a PyTorch file (no single data.pkl)")
        root = pickles[0][: -len("data.pkl")]
        byteorder = b"little"
        if f"{root}byteorder" in archive.namelist():
            byteorder = archive.read(f"{root}byteorder").strip()
        if byteorder != b"little":
            raise VidpromptError(f"{path}: tensors stored {byteorder.decode(errors='replace')}-endian are not "
                                 "supported")

        def read_member(name: str, size: int | None = None) -> torch.Tensor:
            """The bytes of an uncompressed member (``size`` of them, when the pickle says how many)."""
            try:
                info = archive.getinfo(name)
            except KeyError:
                raise pickle.UnpicklingError(f"{name} is missing") from None
            if info.compress_type != zipfile.ZIP_STORED:
                raise pickle.UnpicklingError(f"{name} is compressed, which torch.save never does")
            if size is not None and info.file_size != size:
                raise pickle.UnpicklingError(f"storage {name.rsplit('/', 1)[-1]} holds {info.file_size} bytes, "
                                             f"not the {size} its tensors need")
            buffer = torch.empty(info.file_size, dtype=torch.uint8)
            view, done = memoryview(buffer.numpy()), 0
            with archive.open(info) as member:
                while done < info.file_size:
                    got = member.readinto(view[done:])
                    if not got:
                        raise pickle.UnpicklingError(f"{name} ends early")
                    done += got
            return buffer

        data = read_member(pickles[0]).numpy().tobytes()
        unpickler = _Unpickler(io.BytesIO(data), lambda key, size: read_member(f"{root}data/{key}", size))
        return unpickler.load()


def load_pickled(path: str | Path) -> object:
    """The object a ``torch.save`` file holds, tensors on the CPU, read without running code from the file.

    Raises :class:`VidpromptError` (one line) for a damaged or truncated file, a file that is not a PyTorch
    file, or an old-format file this PyTorch is not trusted to read."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not is_torch_file(head):
        raise VidpromptError(f"{path}: not a PyTorch file (nor a safetensors checkpoint)")
    if head == _ZIP_MAGIC:
        try:
            return _load_restricted(path)
        except VidpromptError:
            raise
        except Exception as exc:  # a malformed pickle stream, a bad zip member, a tensor out of bounds
            raise VidpromptError(f"{path}: damaged or truncated PyTorch file ({_first_line(exc)})") from None
    if _torch_version() < WEIGHTS_ONLY_TRUSTED_FROM:
        raise VidpromptError(f"{path}: a plain pickle or an old-format PyTorch file; vidprompt reads those only "
                             f"with PyTorch {'.'.join(map(str, WEIGHTS_ONLY_TRUSTED_FROM))} or newer (this is "
                             f"{torch.__version__}); re-save it with torch.save from a recent PyTorch")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not the user's business
            warnings.simplefilter("ignore")
            with open(path, "rb") as handle:  # a file object: torch must not pick a reader by the file's name
                return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise VidpromptError(f"{path}: a plain pickle (or an old-format PyTorch file) holding more than "
                             f"tensors, refused without running it ({_refusal(exc)})") from None
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, ValueError...
        raise VidpromptError(f"{path}: damaged or truncated PyTorch file ({_first_line(exc)})") from None


def is_torch_file(head: bytes) -> bool:
    """Whether a file's first bytes are those of ``torch.save`` output: a zip archive, or a pickle (the old
    format)."""
    return head[:4] == _ZIP_MAGIC or head[:1] == bytes([_PICKLE_PROTOCOL_OPCODE])


def _torch_version() -> tuple[int, int]:
    parts = torch.__version__.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return (0, 0)


def _refusal(exc: BaseException) -> str:
    """The reason in torch's weights-only refusal (``Unsupported global: GLOBAL os.system ...``), without the
    advice around it that does not apply here."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    text = text.strip()
    return text.splitlines()[0][:160] if text else "refused"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:160] if text else type(exc).__name__)


def describe(obj: object) -> str:
    """A short description of what a loaded object is, for "not a checkpoint" messages."""
    if isinstance(obj, Opaque):
        return f"a call to {obj.name} (not run)" if obj.args else f"an object of type {obj.name} (not loaded)"
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:6]]
        more = ", ..." if len(obj) > 6 else ""
        return f"a dict with keys {', '.join(keys)}{more}" if keys else "an empty dict"
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)}"
    return f"a {type(obj).__name__}"
