"""AIM: adapt a frozen CLIP image encoder to video with small adapters (Yang et al., ICLR 2023).

Each residual block of the frozen ViT gets three bottleneck adapters - temporal (the block's own attention
reused across the frames of each token position), spatial and joint - and the tokens of every frame get a
learned temporal embedding. All of them start at zero, so an untrained AIM is exactly the frozen CLIP frame
by frame. The per-frame class tokens go through CLIP's own projection and are scored against the frozen CLIP
text encoder, so AIM stays open-vocabulary. The paper's closed-set linear head (``head_classes``, on the
unprojected feature) exists for the published checkpoints: :class:`ClosedSetHead` scores with it.

The ViT is not copied: :class:`AIMBlock` wraps open_clip's residual blocks and :meth:`AIM.encode_frames`
drives the vision tower's own submodules, so the weights stay those of the backbone.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from timm.layers import drop_path
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..backbone import Backbone
from ..errors import OptionValueError, UsageError, out_of_range
from ..labels import DEFAULT_TEMPLATES, check_template, label_key
from ..video.sampling import MAX_FRAMES
from .base import VideoTextModel, normalize, resample_positions
from .zeroshot import ZeroShotCLIP

ADAPTER_POSITIONS = ("all", "bottom", "top", "skip")


class Adapter(nn.Module):
    """Bottleneck MLP ``D -> D*ratio -> D``; the up-projection starts at zero so the adapter starts as a no-op.

    ``skip=True`` returns ``x + adapter(x)`` (the spatial adapter sits on the residual stream's attention
    output and must pass it through); ``skip=False`` returns the adapter's output alone (temporal and joint
    adapters produce an extra residual branch).
    """

    def __init__(self, width: int, ratio: float = 0.25, skip: bool = False):
        super().__init__()
        hidden = int(width * ratio)
        if hidden < 1:
            raise OptionValueError("ratio", f"ratio {ratio} leaves no hidden units for width {width}")
        self.skip = skip
        self.down = nn.Linear(width, hidden)
        self.act = nn.GELU()  # exact GELU, as in the paper, whatever activation the CLIP uses
        self.up = nn.Linear(hidden, width)
        nn.init.trunc_normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.up(self.act(self.down(x)))
        return x + out if self.skip else out


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: while training, drop the branch for whole videos.

    Tokens arrive as ``[B*T, L, D]``; viewed as ``[B, T, L, D]``, timm's ``drop_path`` (one draw per item of
    dim 0) makes one keep/drop draw per video, shared by its ``T`` frames, so a dropped branch is dropped for
    the whole clip, as stochastic depth means. (The official AIM code applies timm's ``DropPath`` to tokens laid
    out sequence-first, ``[L, B*T, D]``: one draw per token position, shared by every frame of every video in
    the batch, so a dropped branch loses some token positions of all clips at once.)
    """

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor, frames: int = 1) -> torch.Tensor:
        return drop_path(x.unflatten(0, (-1, frames)), self.rate, self.training).flatten(0, 1)

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


class AIMBlock(nn.Module):
    """One open_clip residual block (frozen, reused as is) plus AIM's temporal, spatial and joint adapters.

    Tokens arrive batch-first ``[B*T, L, D]``, frames of one video contiguous. With ``adapted=False`` the
    block runs unchanged (adapter-position ablations keep the same module list). ``temporal_adapter_in`` adds
    the official code's second temporal adapter (with inner skip) between ``ln_1`` and the temporal attention,
    which its Something-Something configurations use.
    """

    def __init__(self, block: nn.Module, adapted: bool = True, bottleneck_ratio: float = 0.25,
                 joint_scale: float = 0.5, drop_path: float = 0.0, temporal_adapter_in: bool = False):
        super().__init__()
        self.block = block  # shared with the backbone; frozen and kept in eval by AIM.train
        self.adapted = adapted
        self.joint_scale = joint_scale
        if adapted:
            width = block.ln_1.normalized_shape[0]
            if temporal_adapter_in:
                self.temporal_adapter_in = Adapter(width, bottleneck_ratio, skip=True)
            self.temporal_adapter = Adapter(width, bottleneck_ratio, skip=False)
            self.spatial_adapter = Adapter(width, bottleneck_ratio, skip=True)
            self.joint_adapter = Adapter(width, bottleneck_ratio, skip=False)
            self.drop_path = DropPath(drop_path)

    def _attend(self, x: torch.Tensor, adapter_in: nn.Module | None = None) -> torch.Tensor:
        """The block's own ``ls_1(attention(ln_1(x)))`` on batch-first tokens, whatever layout it expects;
        ``adapter_in`` runs between the norm and the attention."""
        blk = self.block
        h = blk.ln_1(x)
        if adapter_in is not None:
            h = adapter_in(h)
        if hasattr(blk, "attention"):  # open_clip ResidualAttentionBlock (nn.MultiheadAttention)
            seq_first = not getattr(blk.attn, "batch_first", True)
            if seq_first:
                h = h.transpose(0, 1)
            out = blk.attention(q_x=h)
            if seq_first:
                out = out.transpose(0, 1)
        else:  # CustomResidualAttentionBlock: batch-first only, optional norm after attention
            out = blk.ln_attn(blk.attn(h))
        return blk.ls_1(out)

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        seq_first = not getattr(self.block.attn, "batch_first", True)
        if seq_first:
            return self.block(x.transpose(0, 1)).transpose(0, 1)
        return self.block(x)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if not self.adapted:
            return self._plain(x)
        n, length, width = x.shape
        b, t = n // num_frames, num_frames
        # 1) temporal: attention across the T frames at each token position
        xt = x.reshape(b, t, length, width).transpose(1, 2).reshape(b * length, t, width)
        xt = self.temporal_adapter(self._attend(xt, getattr(self, "temporal_adapter_in", None)))
        xt = xt.reshape(b, length, t, width).transpose(1, 2).reshape(n, length, width)
        x = x + self.drop_path(xt, t)
        # 2) spatial: the block's usual attention, through an adapter with inner skip
        x = x + self.spatial_adapter(self._attend(x))
        # 3) MLP with the joint adapter beside it
        h = self.block.ln_2(x)
        return (x + self.block.ls_2(self.block.mlp(h))
                + self.drop_path(self.joint_scale * self.joint_adapter(h), t))


def adapted_blocks(depth: int, positions: str) -> list[bool]:
    """Which of ``depth`` blocks get adapters: ``all``, ``bottom``/``top`` half, or ``skip`` (every other,
    starting with the first)."""
    if positions == "all":
        return [True] * depth
    if positions == "bottom":
        return [i < depth // 2 for i in range(depth)]
    if positions == "top":
        return [i >= depth // 2 for i in range(depth)]
    if positions == "skip":
        return [i % 2 == 0 for i in range(depth)]
    raise out_of_range("positions", repr(positions), f"one of {', '.join(ADAPTER_POSITIONS)}")


class AIM(VideoTextModel):
    """Frozen CLIP ViT + AIM adapters on the video side; frozen CLIP text encoder with template ensemble.

    Trainable: adapters, temporal embedding and a copy of the vision ``ln_post`` owned by this model (the
    backbone's own ``ln_post`` stays frozen, so a backbone shared with other methods never changes), and the
    closed-set ``head`` when ``head_classes`` > 0 (published checkpoints; vidprompt does not train one).
    """

    method = "aim"
    frame_features_cacheable = False  # per-frame features depend on the adapters and on the other frames

    # The text side is exactly zero-shot CLIP's; borrow its methods rather than duplicate them.
    encode_labels = ZeroShotCLIP.encode_labels
    text_cache_key = ZeroShotCLIP.text_cache_key
    logit_scale = ZeroShotCLIP.logit_scale

    def __init__(
        self,
        backbone: Backbone,
        num_frames: int = 8,
        adapter_positions: str = "all",
        bottleneck_ratio: float = 0.25,
        joint_scale: float = 0.5,
        drop_path: float = 0.2,
        grad_checkpointing: bool = False,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        temporal_adapter_in: bool = False,
        head_classes: int = 0,
    ):
        super().__init__(backbone)
        visual = self.clip.visual
        if not all(hasattr(visual, a) for a in ("conv1", "class_embedding", "positional_embedding", "transformer")):
            raise UsageError(f"AIM needs a ViT image encoder; {backbone.name} has {type(visual).__name__}")
        if getattr(visual, "attn_pool", None) is not None:
            raise UsageError(f"AIM does not support attention-pooled image encoders ({backbone.name})")
        width = visual.positional_embedding.shape[-1]
        if int(num_frames) < 1:
            raise out_of_range("num_frames", num_frames, "at least 1")
        if adapter_positions not in ADAPTER_POSITIONS:
            raise out_of_range("adapter_positions", repr(adapter_positions), f"one of {', '.join(ADAPTER_POSITIONS)}")
        if int(width * bottleneck_ratio) < 1:
            raise OptionValueError("bottleneck_ratio", f"bottleneck_ratio {bottleneck_ratio} leaves no hidden units "
                                                       f"for width {width}")
        if not 0.0 <= drop_path < 1.0:
            raise out_of_range("drop_path", drop_path, "in [0, 1)")
        if int(head_classes) < 0:
            raise out_of_range("head_classes", head_classes, "0 (no head) or more")
        self.templates = tuple(check_template(t) for t in templates)
        self.num_frames = int(num_frames)
        self.adapter_positions = adapter_positions
        self.bottleneck_ratio = float(bottleneck_ratio)
        self.joint_scale = float(joint_scale)
        self.drop_path = float(drop_path)
        self.grad_checkpointing = bool(grad_checkpointing)
        self.temporal_adapter_in = bool(temporal_adapter_in)
        self.head_classes = int(head_classes)

        resblocks = visual.transformer.resblocks
        depth = len(resblocks)
        rates = torch.linspace(0.0, self.drop_path, depth).tolist()  # stochastic depth rises with depth
        self.blocks = nn.ModuleList(
            AIMBlock(blk, adapted, self.bottleneck_ratio, self.joint_scale, rate, self.temporal_adapter_in)
            for blk, adapted, rate in zip(resblocks, adapted_blocks(depth, adapter_positions), rates)
        )
        self.temporal_embedding = nn.Parameter(torch.zeros(self.num_frames, width))
        self.ln_post = copy.deepcopy(visual.ln_post).requires_grad_(True)
        # The paper's closed-set classifier on the unprojected feature (dropout 0.5 in training, none here).
        self.head = nn.Linear(width, self.head_classes) if self.head_classes else None
        self.to(self.backbone.device)
        self.train(self.clip.training)

    def train(self, mode: bool = True) -> "AIM":
        """Switch adapters and drop-path; the frozen CLIP (wrapped blocks included) always stays in eval."""
        super().train(mode)
        self.clip.eval()
        return self

    # --- video side -------------------------------------------------------------------------------------
    def _temporal_embedding(self, t: int) -> torch.Tensor:
        """``[t, D]``: the learned embedding, resampled when a clip has another number of frames."""
        return resample_positions(self.temporal_embedding, t)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """open_clip's token pooling with our trainable ``ln_post`` in place of the frozen one."""
        visual = self.clip.visual
        if visual.final_ln_after_pool:
            pooled, _ = visual._global_pool(x)
            return self.ln_post(pooled)
        if visual.pool_type == "tok":  # layer norm is per token: normalise the class token only
            return self.ln_post(x[:, 0])
        pooled, _ = visual._global_pool(self.ln_post(x))
        return pooled

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` -> per-frame projected features ``[B, T, D]``; frames of a clip see each other."""
        pooled = self.pooled_frames(frames)
        proj = self.clip.visual.proj
        return pooled if proj is None else pooled @ proj

    def pooled_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` -> per-frame ``ln_post`` class tokens ``[B, T, W]``, before CLIP's projection
        (what the closed-set head reads, averaged over time)."""
        visual = self.clip.visual
        b, t = frames.shape[:2]
        x = visual.conv1(frames.flatten(0, 1).to(visual.conv1.weight.dtype))  # [BT, W, gh, gw]
        x = x.flatten(2).transpose(1, 2)  # [BT, gh*gw, W]
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = x.unflatten(0, (b, t)) + self._temporal_embedding(t).to(x.dtype)[None, :, None, :]
        x = visual.ln_pre(visual.patch_dropout(x.flatten(0, 1)))
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, t, use_reentrant=False)
            else:
                x = blk(x, t)
        return self._pool(x).unflatten(0, (b, t))

    def aggregate(self, frame_features: torch.Tensor) -> torch.Tensor:
        """Mean of the per-frame features over time (AIM's temporal average), then L2-normalised."""
        return normalize(frame_features.mean(dim=1))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.aggregate(self.encode_frames(frames))

    # --- training and checkpoints -----------------------------------------------------------------------
    def no_weight_decay(self) -> set[str]:
        """Trainable parameters the official recipe keeps out of weight decay: ``ln_post`` only.

        The official configs exempt parameters whose names contain ``class_embedding``,
        ``positional_embedding``, ``ln_1``, ``ln_2``, ``ln_pre`` or ``ln_post`` (mmcv's ``custom_keys``); of
        the trained ones that is ``ln_post`` alone. The backbone's ``no_weight_decay`` method there is never
        called, so the temporal embedding and the adapters' biases are decayed, and so they are here."""
        return {f"ln_post.{n}" for n, _ in self.ln_post.named_parameters()}

    @staticmethod
    def stored_shape_problem(hparams: dict, shapes: dict[str, tuple[int, ...]]) -> str | None:
        """The frame count must be that of the stored temporal embedding; ratios within their ranges."""
        frames = shapes.get("temporal_embedding", (0,))[0]
        if not 1 <= frames <= MAX_FRAMES:
            return f"the stored temporal embedding has {frames} rows (1 to {MAX_FRAMES} frames)"
        if hparams.get("num_frames", 8) != frames:
            return f"num_frames is {hparams.get('num_frames', 8)} but the stored temporal embedding has {frames} rows"
        head = shapes.get("head.weight", (0,))[0]
        if hparams.get("head_classes", 0) != head:
            return f"head_classes is {hparams.get('head_classes', 0)} but the stored head has {head} rows"
        adapter_in = any(".temporal_adapter_in." in name for name in shapes)
        if hparams.get("temporal_adapter_in", False) != adapter_in:
            return f"temporal_adapter_in is {hparams.get('temporal_adapter_in', False)} but the stored tensors " \
                   f"{'have' if adapter_in else 'have no'} such adapters"
        if not 0 < hparams.get("bottleneck_ratio", 0.25) <= 1:
            return f"bottleneck_ratio {hparams['bottleneck_ratio']} is not in (0, 1]"
        return None

    def hparams(self) -> dict:
        return {
            "num_frames": self.num_frames,
            "adapter_positions": self.adapter_positions,
            "bottleneck_ratio": self.bottleneck_ratio,
            "joint_scale": self.joint_scale,
            "drop_path": self.drop_path,
            "grad_checkpointing": self.grad_checkpointing,
            "templates": list(self.templates),
            "temporal_adapter_in": self.temporal_adapter_in,
            "head_classes": self.head_classes,
        }

    def closed_set(self, classes: Sequence[str]) -> "ClosedSetHead":
        """This model scored with its trained linear head over ``classes`` (the head's classes, in order)."""
        return ClosedSetHead(self, classes)


class ClosedSetHead(VideoTextModel):
    """AIM with the paper's closed-set linear head, behind the same interface as the open-vocabulary model.

    Logits are ``W f + b`` with ``f`` the time-averaged, unprojected ``ln_post`` class token, exactly as the
    official recognizer computes them. To fit the interface (``logit_scale * video @ labels.T``) a video's
    embedding is ``[f, 1]`` and a class's is its head row ``[w, b]``; ``logit_scale`` is 1. Only the head's own
    classes can be scored; the modules are those of ``aim`` (shared, not copied).
    """

    method = "aim"
    frame_features_cacheable = False

    def __init__(self, aim: AIM, classes: Sequence[str]):
        super().__init__(aim.backbone)
        if aim.head is None:
            raise UsageError("this AIM model has no closed-set head")
        if len(classes) != aim.head_classes:
            raise UsageError(f"the head has {aim.head_classes} classes; {len(classes)} names were given")
        self.aim = aim
        self.classes = list(classes)
        self._row = {label_key(name): i for i, name in enumerate(self.classes)}  # spelling-insensitive
        self.register_buffer("_one", torch.ones((), device=aim.backbone.device), persistent=False)

    def train(self, mode: bool = True) -> "ClosedSetHead":
        self.aim.train(mode)
        self.training = mode
        return self

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        features = self.aim.pooled_frames(frames).mean(dim=1)
        return torch.cat([features, torch.ones_like(features[:, :1])], dim=-1)

    def encode_labels(self, labels: Sequence[str]) -> torch.Tensor:
        missing = [name for name in labels if label_key(name) not in self._row]
        if missing:
            raise UsageError(f"'{missing[0]}' is not one of the head's {len(self.classes)} classes")
        rows = torch.tensor([self._row[label_key(name)] for name in labels], device=self.aim.head.weight.device)
        head = self.aim.head
        return torch.cat([head.weight, head.bias[:, None]], dim=-1)[rows]

    def text_cache_key(self) -> None:
        return None  # a lookup, not an encoder: nothing to cache

    @property
    def logit_scale(self) -> torch.Tensor:
        return self._one

    def hparams(self) -> dict:
        return self.aim.hparams()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return self.aim.trainable_state()


def aim_parameter_counts(model: AIM, num_classes: int = 400) -> dict[str, int]:
    """Parameters as the AIM paper counts them: vision side only, CLIP's projection left out, and a
    ``width x num_classes`` linear head (with bias) added, so our figures compare with its tables.

    Returns ``total``, ``tunable``, ``adapters`` and ``head``.
    """
    visual = model.clip.visual
    # The frozen ln_post is replaced by the model's own trainable copy, so it is not counted twice.
    skip = {id(visual.proj)} | {id(p) for p in visual.ln_post.parameters()}
    frozen = sum(p.numel() for p in visual.parameters() if id(p) not in skip)
    clip_ids = {id(p) for p in model.clip.parameters()}
    own = [(n, p) for n, p in model.named_parameters() if id(p) not in clip_ids]
    width = model.ln_post.normalized_shape[0]
    head = width * num_classes + num_classes
    return {
        "total": frozen + sum(p.numel() for _, p in own) + head,
        "tunable": sum(p.numel() for _, p in own if p.requires_grad) + head,
        "adapters": sum(p.numel() for n, p in own if "adapter" in n),
        "head": head,
    }
