"""Hostile inputs, made on demand: the files a careless or malicious user hands vidprompt.

Reusable by any test (``tests/test_adversarial.py`` drives every command with them). Each method writes one
file or folder under ``root`` and returns its path; nothing here needs a model.

    bad = Hostile(tmp_path)
    bad.text("labels.txt", b"caf\\xe9\\n")       # not UTF-8
    bad.self_including_list()                    # a .txt input list that lists itself
    bad.checkpoint_with(real_ckpt, hparams=...)  # a real checkpoint with edited metadata
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

NOT_UTF8 = b"caf\xe9 au lait\nsurfing\n"  # Latin-1 text, as old Windows editors save it


class Hostile:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # --- plain files ----------------------------------------------------------------------------------
    def path(self, name: str | bytes) -> Path:
        """``root/name``; a ``bytes`` name may hold bytes that are not UTF-8 (valid on Linux)."""
        if isinstance(name, bytes):
            return Path(os.fsdecode(os.path.join(os.fsencode(self.root), name)))
        return self.root / name

    def text(self, name: str | bytes, data: bytes | str) -> Path:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def not_utf8(self, name: str) -> Path:
        return self.text(name, NOT_UTF8)

    def folder(self, name: str) -> Path:
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def copy(self, source: str | os.PathLike, name: str | bytes) -> Path:
        """A copy of ``source`` under a hostile name (newline, undecodable bytes, leading dash...)."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        return path

    # --- list files -----------------------------------------------------------------------------------
    def self_including_list(self, video: str | os.PathLike, name: str = "self.txt") -> Path:
        path = self.path(name)
        path.write_text(f"{video}\n{path}\n", "utf-8")
        return path

    def mutual_lists(self, video: str | os.PathLike) -> tuple[Path, Path]:
        a, b = self.path("a.txt"), self.path("b.txt")
        a.write_text(f"{video}\nb.txt\n", "utf-8")
        b.write_text("a.txt\n", "utf-8")
        return a, b

    # --- data folders ---------------------------------------------------------------------------------
    def class_folders(self, name: str, classes: dict[str, list[str | os.PathLike | bytes]]) -> Path:
        """``name/<class>/`` per class: each entry is a video to copy in, or bytes to write as a fake one."""
        root = self.folder(name)
        for cls, items in classes.items():
            folder = root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i, item in enumerate(items):
                target = folder / f"clip{i}.mp4"
                if isinstance(item, bytes):
                    target.write_bytes(item)
                else:
                    shutil.copyfile(item, target)
        return root

    # --- checkpoints ----------------------------------------------------------------------------------
    def checkpoint_with(self, source: str | os.PathLike, name: str, *, drop: tuple[str, ...] = (),
                        tensors: dict | None = None, **metadata: object) -> Path:
        """A copy of the real checkpoint ``source`` with metadata entries replaced (values that are not
        strings are JSON-encoded, as vidprompt stores them) or dropped, and optionally other tensors."""
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(source), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
            stored = {key: handle.get_tensor(key) for key in handle.keys()}
        for key, value in metadata.items():
            meta[key] = value if isinstance(value, str) else json.dumps(value)
        for key in drop:
            meta.pop(key, None)
        path = self.path(name)
        save_file(stored if tensors is None else tensors, str(path), metadata=meta)
        return path

    @staticmethod
    def metadata(checkpoint: str | os.PathLike) -> dict:
        from safetensors import safe_open

        with safe_open(str(checkpoint), framework="pt") as handle:
            return {key: _decoded(value) for key, value in (handle.metadata() or {}).items()}

    def pickle_bomb(self, name: str, marker: str | os.PathLike) -> Path:
        """A pickle that would create ``marker`` when unpickled (never run by a safe loader)."""
        import pickle

        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        path = self.path(name)
        path.write_bytes(pickle.dumps({"state": Payload()}))
        return path

    # --- index folders --------------------------------------------------------------------------------
    def damaged_index(self, source: str | os.PathLike, name: str, *, meta: dict | None = None,
                      entries: str | None = None, dead: bytes | None = None, legacy: bool = False,
                      remove: tuple[str, ...] = ()) -> Path:
        """A copy of the real index ``source`` with ``index.json`` keys replaced, its first segment's entries
        replaced by raw text or given a deletion list of raw bytes, or files removed (paths inside the first
        segment). ``legacy``: ``meta`` applies to a format-1 index.json written over it."""
        root = self.path(name)
        shutil.copytree(source, root)
        data = json.loads((root / "index.json").read_text("utf-8"))
        segment = root / "segments" / f"{data['segments'][0]['number']:06d}"
        if dead is not None:
            (segment / "dead-999999.npy").write_bytes(dead)
            data["segments"][0]["dead"] = "dead-999999.npy"
        if meta is not None:
            data.update(meta)
        (root / "index.json").write_text(json.dumps(data), "utf-8")
        if entries is not None:
            (segment / "entries.jsonl").write_text(entries, "utf-8")
        for item in remove:
            (segment / item).unlink()
        return root


def _decoded(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value
