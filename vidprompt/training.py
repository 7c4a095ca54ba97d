"""The training loop for PromptCLIP and AIM, readable top to bottom.

Frozen-backbone methods (PromptCLIP) train on cached frame features; AIM decodes frames and runs the
adapted backbone every step. Everything random derives from ``(seed, epoch)``, and the whole training state
(trained tensors, optimiser, scheduler, history) is saved atomically after every epoch, so a killed run
resumed with ``--resume`` ends with exactly the tensors of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from . import distributed
from .backbone import build_backbone
from .checkpoint import save_checkpoint
from .config import RESUME_OVERRIDES, TrainConfig, load_config, save_config
from .errors import OptionValueError, UsageError, VidpromptError
from .fileio import atomic_write, atomic_write_text, check_output_folder, make_folder
from .locks import claim
from .methods import build_method
from .methods.base import VideoTextModel
from .runtime import autocast, resolve_precision
from .transforms import FramePreprocessor
from .video import ViewConfig, resolve_decoder

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"
RUN_LOCK = ".run.lock"  # held by the main process while it trains: two runs never write one folder


@dataclass
class TrainData:
    classes: list[str]
    train_paths: list[str]
    train_labels: list[int]
    val_paths: list[str]
    val_labels: list[int]


def load_train_data(cfg: TrainConfig) -> TrainData:
    """The training and validation videos with label indices into one class list."""
    from .datasets import load_dataset
    from .labels import read_labels_file, resolve_labels

    label_list = resolve_labels(None, cfg.labels_file, cfg.label_set, required=False)
    train = load_dataset(cfg.dataset, root=cfg.root, annotations=cfg.annotations, split=cfg.split,
                         subset="train", splits_dir=cfg.splits_dir, labels_json=cfg.labels_json,
                         data=cfg.data, list_file=cfg.list_file, label_list=label_list)
    source = cfg.data or cfg.list_file or cfg.dataset
    if train.empty_folders:
        raise UsageError(f"{source}: class '{train.empty_folders[0]}' has no videos (a class folder without "
                         "videos cannot be learned: add videos or remove the folder)")
    if cfg.classes:
        train = train.subset_classes(read_labels_file(cfg.classes))
    if len(train.classes) < 2:
        raise UsageError(f"{source}: training needs at least 2 classes, found {len(train.classes)} "
                         f"({', '.join(train.classes)}); a classifier over one class learns nothing")
    val = None
    if cfg.val:
        is_folder = Path(cfg.val).is_dir()
        val = load_dataset(cfg.dataset if not is_folder else None, data=cfg.val if is_folder else None,
                           list_file=None if is_folder else cfg.val, label_list=train.classes)
    elif cfg.val_fraction > 0:
        train, val = train.split(cfg.val_fraction, seed=cfg.seed)
    if cfg.shots:
        train = train.few_shot(cfg.shots, seed=cfg.seed)
    if len(train) == 0:
        raise UsageError("no training videos found")
    val_samples = list(val.samples) if val is not None else []
    return TrainData(classes=list(train.classes),
                     train_paths=[str(s.path) for s in train.samples], train_labels=[s.index for s in train.samples],
                     val_paths=[str(s.path) for s in val_samples], val_labels=[s.index for s in val_samples])


def _param_groups(model: VideoTextModel, weight_decay: float) -> list[dict]:
    """Weight decay as the official recipes apply it: on every trained tensor except those the method names
    in ``no_weight_decay()`` (AIM: its ``ln_post``; PromptCLIP: none, its code decays everything)."""
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name in skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _legacy_groups(model: VideoTextModel) -> tuple[list, list]:
    """The (decay, no decay) split of vidprompt before it followed the official recipes (no decay on norms,
    biases and embeddings), so that runs started then resume with the groups they started with."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or "embedding" in name else decay).append(param)
    return decay, no_decay


def _scheduler(optimizer, warmup_steps: int, total_steps: int, min_lr: float):
    """Linear warm-up then cosine, stepped per optimiser step (torch's own schedulers)."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    warmup_steps = min(warmup_steps, total_steps - 1) if total_steps > 1 else 0
    cosine = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1), eta_min=min_lr)
    if warmup_steps <= 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


class _LossModule(torch.nn.Module):
    """One training step's loss as a module, so DistributedDataParallel can wrap it: video embeddings
    (from cached frame features, or frames through the backbone) against the class names' embeddings."""

    def __init__(self, model: VideoTextModel, classes: list[str], preprocessor: FramePreprocessor):
        super().__init__()
        self.model = model
        self.classes = list(classes)
        self.preprocessor = preprocessor

    def videos(self, inputs: torch.Tensor) -> torch.Tensor:
        """Cached frame features ``[B, T, D]`` or uint8 frames ``[B, T, 3, h, w]`` -> video embeddings."""
        if self.model.frame_features_cacheable:
            return self.model.aggregate(inputs)
        return self.model.encode_video(self.preprocessor.normalize(inputs))

    def forward(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        text = self.model.encode_labels(self.classes)
        logits = self.model.logits(self.videos(inputs), text).float()
        if target is None:  # a placeholder batch: no loss, but the same gradient sync as the other ranks
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target)


class Trainer:
    def __init__(self, cfg: TrainConfig, progress: bool = True):
        self.cfg = cfg = cfg.resolved()  # checked: every bound of TrainConfig holds from here on
        self.progress = progress
        self.out = Path(cfg.out)
        # Under torchrun: join the process group; each rank gets its own GPU (or CPU with gloo).
        self.device = distributed.init_from_env(cfg.device)
        self.world = distributed.world_size()
        self.autocast_dtype = resolve_precision(cfg.precision, self.device)
        self.decoder = resolve_decoder(cfg.decoder, self.device)
        self.view = ViewConfig(frames=cfg.frames, sampling=cfg.sampling, stride=cfg.stride)
        self.data = load_train_data(cfg)
        most = -(-len(self.data.train_paths) // self.world)  # a batch cannot hold more videos than there are
        if cfg.batch_size > most:  # (the "global batch" line below says what is used)
            self.cfg = cfg = dataclasses.replace(cfg, batch_size=most)
        backbone = build_backbone(cfg.model, cfg.pretrained)
        torch.manual_seed(cfg.seed)  # the initial prompts / temporal weights / adapters
        self.model = build_method(cfg.method, backbone, **cfg.method_options()).to(self.device)
        self.preprocessor = FramePreprocessor(backbone.preprocess_cfg, crops=1)
        self.step_module = _LossModule(self.model, self.data.classes, self.preprocessor)
        self.loss_module = self.step_module
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # Gradients of the trained tensors are averaged over ranks; the frozen CLIP is not touched.
            self.loss_module = DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False)
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        self.global_batch = cfg.batch_size * self.world * cfg.accumulate
        if distributed.is_main():
            log.info("global batch %d = %d per process x %d processes x %d accumulation steps",
                     self.global_batch, cfg.batch_size, self.world, cfg.accumulate)
        per_epoch = math.ceil(len(self.data.train_paths) / self.global_batch)
        self.steps_per_epoch = per_epoch
        self.scheduler = _scheduler(self.optimizer, round(cfg.warmup_epochs * per_epoch), per_epoch * cfg.epochs,
                                    cfg.min_lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self.epoch = 0  # epochs completed
        self.history: list[dict] = []
        self.best: float | None = None
        self._features: dict[str, object] | None = None

    # --- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "best": self.best, "history": json.dumps(self.history),
                "model": {k: v.detach().cpu() for k, v in self.model.trainable_state().items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise VidpromptError(f"cannot resume from {path}: {type(exc).__name__}") from None
        expected = self.model.trainable_state()
        saved = state["model"]
        wrong = sorted(set(saved) ^ set(expected)) or [
            name for name, tensor in saved.items() if tuple(tensor.shape) != tuple(expected[name].shape)]
        if wrong:  # never copy into the frozen backbone, whatever the file holds
            raise VidpromptError(f"cannot resume from {path}: its tensors do not fit this run's model "
                                 f"({', '.join(wrong[:3])})")
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in saved.items():
                params[name].copy_(tensor)
        self._match_saved_groups(path, state["optimizer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best = int(state["epoch"]), state["best"]
        self.history = json.loads(state["history"])

    def _match_saved_groups(self, path: Path, saved: dict) -> None:
        """A run started by an earlier vidprompt split weight decay by its older rule; give the optimizer those
        groups back, so the run continues exactly as it began."""
        sizes = [len(group.get("params", ())) for group in saved.get("param_groups", ())]
        if sizes == [len(group["params"]) for group in self.optimizer.param_groups]:
            return
        legacy = _legacy_groups(self.model)
        if sizes != [len(group) for group in legacy]:
            raise VidpromptError(f"cannot resume from {path}: its optimizer state does not fit this run's model")
        for group, params in zip(self.optimizer.param_groups, legacy):
            group["params"] = params
        log.warning("warning: %s was started by an earlier vidprompt with no weight decay on norms, biases and "
                    "embeddings; it resumes that way (new runs follow the official recipes)", path.parent)

    def _save(self, improved: bool) -> None:
        extra = {"epoch": self.epoch, "val_accuracy": self.history[-1].get("val_accuracy")}
        # The state is the commit point and goes last. Killed before it, a resume replays this epoch exactly and
        # rewrites the same files; written first, a kill could leave a state that counts a best.safetensors
        # that was never written.
        save_checkpoint(self.out / "last.safetensors", self.model, self.view, self.data.classes, extra)
        if improved:
            save_checkpoint(self.out / "best.safetensors", self.model, self.view, self.data.classes, extra)
        atomic_write_text(self.out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))
        atomic_write(self.out / STATE_FILE, lambda tmp: torch.save(self.state_dict(), tmp))

    # --- data -----------------------------------------------------------------------------------------------
    def _cached_features(self) -> dict:
        """PromptCLIP: ``cache_views`` random samplings per training video, test sampling for validation."""
        from .features import TEST_DRAW, FrameFeatureCache
        from .progress import progress_bar

        cfg = self.cfg
        cache = FrameFeatureCache(self.model, self.view, seed=cfg.seed, device=self.device,
                                  autocast_dtype=self.autocast_dtype, num_workers=cfg.num_workers,
                                  decoder=self.decoder)
        if self.world > 1:
            # Each process encodes its share into the (shared) disk cache, then all read the whole set.
            rank = distributed.rank()
            total = len(self.data.train_paths[rank::self.world]) * cfg.cache_views
            with progress_bar(total, "caching frame features", self.progress and distributed.is_main()) as adv:
                for draw in range(cfg.cache_views):
                    cache.features(self.data.train_paths[rank::self.world], draw, adv)
            if distributed.is_main():
                cache.features(self.data.val_paths, TEST_DRAW)
            distributed.barrier()
        total = len(self.data.train_paths) * cfg.cache_views + len(self.data.val_paths)
        with progress_bar(total, "caching frame features", self.progress and distributed.is_main()) as advance:
            train = [cache.features(self.data.train_paths, draw, advance) for draw in range(cfg.cache_views)]
            val = cache.features(self.data.val_paths, TEST_DRAW, advance)
        for path, error in cache.stats.failed.items():
            log.warning("skipping %s: %s", path, error)
        log.info("frame features: %d encoded, %d reused from the cache", cache.stats.encoded, cache.stats.reused)
        self.cache_stats = cache.stats
        return {"train": train, "val": val}

    def _usable(self, paths, labels, table) -> tuple[list[str], list[int]]:
        keep = [(p, y) for p, y in zip(paths, labels) if p in table]
        return [p for p, _ in keep], [y for _, y in keep]

    def _readable_videos(self) -> set[str]:
        """AIM decodes its videos every step: the training videos of which one frame decodes, found up front
        (by the decoding workers) so a dataset of unreadable files is refused before training."""
        from .loader import VideoViews, iterate_views
        from .progress import progress_bar

        probe = ViewConfig(frames=1)
        paths = self.data.train_paths[distributed.rank()::self.world]
        dataset = VideoViews(paths, probe, self.preprocessor, decoder=self.decoder)
        readable = set()
        with progress_bar(len(paths), "checking videos", self.progress and distributed.is_main()) as advance:
            for batch in iterate_views(dataset, 16, self.cfg.num_workers):
                readable.update(item.path for item in batch if item.frames is not None)
                for item in batch:
                    if item.frames is None:
                        log.warning("skipping %s: %s", item.path, item.error)
                advance(len(batch))
        return {path for part in distributed.all_gather_object(sorted(readable)) for path in part}

    def _check_usable(self, readable: set[str]) -> None:
        """Refuse to train when no training video can be read, or the readable ones cover one class only; say
        how many videos of each class were usable."""
        classes = self.data.classes
        total = [0] * len(classes)
        usable = [0] * len(classes)
        for path, label in zip(self.data.train_paths, self.data.train_labels):
            total[label] += 1
            usable[label] += path in readable
        present = [i for i in range(len(classes)) if total[i]]
        worst = sorted(present, key=lambda i: (usable[i] / total[i], i))[:8]
        counts = ", ".join(f"{classes[i]}: {usable[i]} of {total[i]}" for i in worst)
        counts += f", ... ({len(present)} classes)" if len(present) > len(worst) else ""
        if not sum(usable):
            raise VidpromptError(f"no training video could be read ({counts}); check the files with "
                                 "`vidprompt classify`")
        if sum(1 for i in present if usable[i]) < 2:
            raise VidpromptError(f"the readable training videos cover one class only ({counts})")
        if distributed.is_main():
            log.info("usable training videos: %d of %d (%s)", sum(usable), sum(total), counts)

    # --- loop -----------------------------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> list[int]:
        """This process's training videos for ``epoch``: one (seed, epoch) permutation shared by all ranks,
        dealt out by torch's DistributedSampler, so the videos of each global batch are the same whatever
        the number of processes."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(len(self.data.train_paths)), num_replicas=self.world,
                                     rank=distributed.rank(), shuffle=True, seed=self.cfg.seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    def _train_batches(self, epoch: int):
        """Yield ``(inputs, labels)`` per step: cached frame features (PromptCLIP) or uint8 frames (AIM)."""
        cfg = self.cfg
        order = self._epoch_order(epoch)
        if self._features is not None:
            tables = self._features["train"]
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            draws = torch.randint(len(tables), (len(self.data.train_paths),), generator=gen).tolist()
            for start in range(0, len(order), cfg.batch_size):
                picked = [(i, self._cached_draw(tables, i, draws[i])) for i in order[start:start + cfg.batch_size]]
                picked = [(i, feats) for i, feats in picked if feats is not None]
                if not picked:
                    if self.world > 1:
                        yield self._placeholder(tables), None
                    continue
                feats = torch.stack([feats for _, feats in picked])
                yield feats.to(self.device).float(), torch.tensor([self.data.train_labels[i] for i, _ in picked],
                                                                  device=self.device)
            return
        from .embedding import decoded
        from .loader import VideoViews

        paths = [self.data.train_paths[i] for i in order]
        labels = [self.data.train_labels[i] for i in order]
        dataset = VideoViews(paths, self.view, self.preprocessor, seed=cfg.seed, draw=epoch, decoder=self.decoder)
        for batch in decoded(dataset, cfg.batch_size, cfg.num_workers, self.device.type == "cuda"):
            if batch.frames is None:
                if self.world > 1:
                    yield self._placeholder(None), None
                continue
            frames = batch.frames[:, 0].to(self.device, non_blocking=True)  # one view per video while training
            yield frames, torch.tensor([labels[item.index] for item in batch.good], device=self.device)

    def _cached_draw(self, tables: list[dict], i: int, draw: int) -> torch.Tensor | None:
        """Video ``i``'s features from its drawn sampling, or the next one that decoded (a file can fail in
        one random draw and not in another)."""
        path = self.data.train_paths[i]
        for k in range(len(tables)):
            feats = tables[(draw + k) % len(tables)].get(path)
            if feats is not None:
                return feats
        return None

    def _placeholder(self, tables: list[dict] | None) -> torch.Tensor:
        """One all-zero input for a step in which every video of this rank's batch failed: under
        DistributedDataParallel every rank must take part in every step."""
        if tables is not None:
            shape, dtype = next(iter(next(t for t in tables if t).values())).shape, torch.float32
        else:
            shape, dtype = (self.view.frames, 3, self.preprocessor.height, self.preprocessor.width), torch.uint8
        return torch.zeros((1, *shape), dtype=dtype, device=self.device)

    def _val_batches(self):
        """Yield ``(inputs, labels)`` for the validation videos with test-time sampling."""
        if self._features is not None:
            table = self._features["val"]
            paths, labels = self._usable(self.data.val_paths, self.data.val_labels, table)
            for start in range(0, len(paths), 256):
                feats = torch.stack([table[p] for p in paths[start:start + 256]])
                yield feats.to(self.device).float(), torch.tensor(labels[start:start + 256])
            return
        from .embedding import decoded
        from .loader import VideoViews

        dataset = VideoViews(self.data.val_paths, self.view, self.preprocessor, decoder=self.decoder)
        for batch in decoded(dataset, self.cfg.batch_size, self.cfg.num_workers):
            if batch.frames is not None:
                yield (batch.frames[:, 0].to(self.device),
                       torch.tensor([self.data.val_labels[item.index] for item in batch.good]))

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Top-1 accuracy on the validation videos (test-time sampling)."""
        if not self.data.val_paths:
            return None
        self.model.eval()
        correct = total = 0
        with autocast(self.device, self.autocast_dtype):
            text = self.model.encode_labels(self.data.classes).float()
            for inputs, truth in self._val_batches():
                pred = self.model.logits(self.step_module.videos(inputs), text).argmax(-1).cpu()
                correct += int((pred == truth).sum())
                total += len(truth)
        return correct / total if total else None

    def fit(self, on_epoch: Callable[[dict], None] | None = None) -> dict:
        from .progress import progress_bar

        cfg = self.cfg
        main = distributed.is_main()
        if self.model.frame_features_cacheable:
            self._features = self._cached_features()
            readable = {path for table in self._features["train"] for path in table}
        else:
            readable = self._readable_videos()
        self._check_usable(readable)
        for epoch in range(self.epoch, cfg.epochs):
            # Drop-path and any other torch randomness: reproducible per (seed, epoch, rank).
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + distributed.rank())
            self.model.train()
            start, losses = time.perf_counter(), []
            with progress_bar(self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", self.progress and main,
                              unit="steps") as advance:
                pending = 0
                for inputs, target in self._train_batches(epoch):
                    pending += 1
                    update = pending == cfg.accumulate
                    # Gradients are averaged across processes only on the step that updates the weights.
                    sync = self.loss_module.no_sync() if self.world > 1 and not update else nullcontext()
                    with sync:
                        with autocast(self.device, self.autocast_dtype):
                            loss = self.loss_module(inputs, target) / cfg.accumulate
                        self.scaler.scale(loss).backward()
                    if target is not None:
                        losses.append(loss.item() * cfg.accumulate)
                    if update:
                        self._step()
                        pending = 0
                        advance(1)
                if pending:
                    self._step()
                    advance(1)
            self.epoch = epoch + 1
            losses = [x for part in distributed.all_gather_object(losses) for x in part]
            val = self.evaluate() if main else None
            record = {"epoch": self.epoch, "train_loss": sum(losses) / max(len(losses), 1),
                      "val_accuracy": val, "lr": self.optimizer.param_groups[0]["lr"],
                      "seconds": round(time.perf_counter() - start, 3)}
            self.history.append(record)
            metric = val if val is not None else -record["train_loss"]
            improved = self.best is None or metric > self.best
            if improved:
                self.best = metric
            if main:
                self._save(improved)
                log.info("epoch %d/%d: loss %.4f%s", self.epoch, cfg.epochs, record["train_loss"],
                         "" if val is None else f", val accuracy {val:.1%}")
            distributed.barrier()  # no rank runs ahead of the saved state
            if on_epoch is not None:
                on_epoch(record)
        return {"epochs": self.epoch, "best": self.best, "history": self.history, "out": str(self.out)}

    def _step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()


def _run_folder(path: str | Path, create: bool = False) -> Path:
    """The run folder ``out``, checked (``create``: made) now, not after hours of work; a bad one is an error
    on ``out``, which the command line reports as its flag."""
    try:
        return make_folder(path, "out") if create else check_output_folder(path, "out")
    except UsageError as exc:
        raise OptionValueError("out", str(exc)) from None


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
          overrides: dict | None = None) -> dict:
    """Train (or resume) a run in ``cfg.out``; returns a summary with the metrics history.

    A resumed run takes its saved config; ``overrides`` may change only where it runs
    (:data:`RESUME_OVERRIDES`), e.g. more decoding workers on another machine.
    """
    out = _run_folder(cfg.out)
    state = out / STATE_FILE
    if resume:
        if not (out / "config.yaml").is_file():
            raise UsageError(f"{out}: no run to resume (config.yaml missing)")
        unknown = sorted(set(overrides or {}) - set(RESUME_OVERRIDES))
        if unknown:
            raise UsageError(f"a resumed run keeps its saved config; only {', '.join(RESUME_OVERRIDES)} may "
                             f"change (not {', '.join(unknown)})")
        # The folder given is the run, wherever it was created: a copied or moved run writes only here.
        cfg = dataclasses.replace(load_config(out / "config.yaml"), out=str(out), **(overrides or {}))
    elif state.exists():
        raise OptionValueError("out", f"out {out} already holds a run: continue it with resume (`vidprompt "
                                      f"train-prompts --resume {out}`) or train into another folder")
    busy = f"{out} is being trained by another `vidprompt train-prompts`"
    # A folder another run is training is refused before any data or model loads; a new folder is created only
    # once the config and data are known to be good.
    lock = claim(out / RUN_LOCK, busy) if distributed.is_main() and out.is_dir() else None
    try:
        trainer = Trainer(cfg, progress=progress)
        if distributed.is_main():
            _run_folder(out, create=True)
            lock = lock or claim(out / RUN_LOCK, busy)
            save_config(trainer.cfg, out / "config.yaml")
        if resume and state.exists():
            trainer.load_state(state)
            if distributed.is_main():
                log.info("resuming %s after epoch %d", out, trainer.epoch)
        summary = trainer.fit()
        distributed.barrier()  # every rank finishes its last collective before the group goes away
        return summary
    finally:  # on failure no barrier: the failing rank exits and torchrun stops the others
        distributed.cleanup()
        if lock is not None:
            lock.release()
