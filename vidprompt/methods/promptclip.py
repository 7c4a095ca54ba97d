"""PromptCLIP (Ju et al., "Prompting Visual-Language Models for Efficient Video Understanding").

Text side: learned prefix/suffix vectors around each class name's tokens go through CLIP's frozen text
encoder, replacing hand-written templates. Video side: frozen per-frame CLIP embeddings go through a small
learned temporal Transformer. Only the prompts and the temporal model train.

Two prompt layouts exist. ``shared`` (the default, and what ``train-prompts`` trains) follows the paper: one set
of suffix vectors after every name. ``official`` reproduces the authors' code for its published checkpoints:
one learned row per absolute token position, so the suffix rows a name uses depend on its token count.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Sequence

import torch
from torch import nn

from ..backbone import Backbone
from ..errors import OptionValueError, UsageError, out_of_range
from ..video.sampling import MAX_FRAMES
from .base import VideoTextModel, normalize, resample_positions

# The paper scores with a fixed temperature instead of CLIP's learned logit scale.
TEMPERATURE = 0.07
# Prompt vectors and the temporal position embedding start as N(0, 0.01^2), as in the paper's code.
INIT_STD = 0.01
PROMPT_LAYOUTS = ("shared", "official")
TEMPORAL_ACTIVATIONS = ("gelu", "quick_gelu")


class PromptedTextEncoder(nn.Module):
    """CLIP's text encoder on ``[SOT] p1..pN <class name> q1..qM [EOT]`` with learned ``p`` and ``q``.

    ``layout="shared"``: the same suffix vectors follow every name whatever its token count (the paper's
    description), so a name of a length never seen in training still uses trained vectors.
    ``layout="official"``: the official code's table of one learned row per token position (``table``,
    ``context_length`` rows): position ``i`` of a prompt takes row ``i``, so the suffix after a name of ``n``
    tokens is rows ``1+N+n .. N+n+M``. A name that does not fit is an error there (the official code fails
    with an index error), where the shared layout clips it with a warning.

    The math after the token embeddings is ``CLIP.encode_text``'s: positional embedding, causal text
    Transformer, ``ln_final``, pooling at the EOT position, projection.

    The frozen CLIP is referenced, not registered as a submodule: its owner (the backbone, or
    :class:`PromptCLIP`) moves it between devices, and this module's state dict holds only the prompts.
    """

    def __init__(self, backbone: Backbone, n_prefix: int = 16, n_suffix: int = 16, layout: str = "shared"):
        super().__init__()
        if layout not in PROMPT_LAYOUTS:
            raise out_of_range("layout", repr(layout), f"one of {', '.join(PROMPT_LAYOUTS)}")
        clip = backbone.model
        tokenizer = backbone.tokenizer
        if not all(hasattr(tokenizer, a) for a in ("encode", "sot_token_id", "eot_token_id")):
            raise UsageError(f"PromptCLIP needs a CLIP BPE tokenizer with start/end-of-text tokens; "
                             f"{backbone.name} uses {type(tokenizer).__name__}")
        if getattr(clip, "text_pool_type", None) not in ("argmax", "eos"):
            raise UsageError(f"PromptCLIP pools the text at the end-of-text token; {backbone.name}'s text "
                             f"tower pools with '{getattr(clip, 'text_pool_type', None)}'")
        for name, length in (("n_prefix", n_prefix), ("n_suffix", n_suffix)):
            if length < 0:
                raise out_of_range(name, length, "0 or more")
        self.context_length = int(clip.positional_embedding.shape[0])
        # One name token at least must fit between the prompts and the SOT/EOT tokens.
        self.max_name_tokens = self.context_length - n_prefix - n_suffix - 2
        if self.max_name_tokens < 1:
            raise OptionValueError("n_prefix", f"n_prefix + n_suffix = {n_prefix + n_suffix} leaves no room for a "
                                               f"class name in a context of {self.context_length} tokens",
                                   mentions=("n_suffix",))
        self._clip = (clip,)  # a tuple keeps nn.Module from registering it
        self._tokenizer = tokenizer
        self.sot_id = int(tokenizer.sot_token_id)
        self.eot_id = int(tokenizer.eot_token_id)
        width = clip.token_embedding.weight.shape[1]
        device = clip.token_embedding.weight.device
        self.layout = layout
        self._lengths = (n_prefix, n_suffix)
        if layout == "shared":
            self.prefix = nn.Parameter(torch.empty(n_prefix, width, device=device).normal_(std=INIT_STD))
            self.suffix = nn.Parameter(torch.empty(n_suffix, width, device=device).normal_(std=INIT_STD))
        else:
            self.table = nn.Parameter(torch.empty(self.context_length, width, device=device).normal_(std=INIT_STD))
        self._name_tokens: dict[str, list[int]] = {}  # tokenised (and clipped) once per name

    @property
    def clip(self):
        return self._clip[0]

    @property
    def n_prefix(self) -> int:
        return self._lengths[0]

    @property
    def n_suffix(self) -> int:
        return self._lengths[1]

    @torch.no_grad()
    def embed_text(self, text: str) -> torch.Tensor:
        """The frozen token embeddings ``[n, W]`` of ``text`` (no SOT/EOT): the prompts a hand-written
        template would give, to start training from or to check against ``encode_text``."""
        ids = torch.tensor(self._tokenizer.encode(text), dtype=torch.long,
                           device=self.clip.token_embedding.weight.device)
        return self.clip.token_embedding(ids).float()

    @classmethod
    def from_text(cls, backbone: Backbone, prefix_text: str, suffix_text: str) -> "PromptedTextEncoder":
        """An encoder whose prompts are the token embeddings of ``prefix_text`` and ``suffix_text``, so
        ``forward([name])`` equals ``encode_text(f"{prefix_text} {name} {suffix_text}")``."""
        tokenizer = backbone.tokenizer
        encoder = cls(backbone, n_prefix=len(tokenizer.encode(prefix_text)),
                      n_suffix=len(tokenizer.encode(suffix_text)))
        with torch.no_grad():
            encoder.prefix.copy_(encoder.embed_text(prefix_text))
            encoder.suffix.copy_(encoder.embed_text(suffix_text))
        return encoder

    def _tokens(self, name: str) -> list[int]:
        tokens = self._name_tokens.get(name)
        if tokens is None:
            tokens = self._tokenizer.encode(name)
            if len(tokens) > self.max_name_tokens and self.layout == "official":
                raise UsageError(f"class name '{name}' has {len(tokens)} tokens; the official PromptCLIP layout "
                                 f"fits at most {self.max_name_tokens} beside its {self.n_prefix}+{self.n_suffix} "
                                 f"prompt rows in {self.context_length} tokens (shorten the name)")
            if len(tokens) > self.max_name_tokens:
                warnings.warn(f"class name '{name}' has {len(tokens)} tokens; only the first "
                              f"{self.max_name_tokens} fit beside {self.n_prefix}+{self.n_suffix} prompt "
                              f"vectors in {self.context_length} tokens", stacklevel=3)
                tokens = tokens[:self.max_name_tokens]
            self._name_tokens[name] = tokens
        return tokens

    def _layout(self, labels: Sequence[str], device: torch.device):
        """Token ids ``[C, L]``, prompt slot per position ``[C, L]`` (-1: use the token's embedding, else a row
        of :meth:`_prompt_rows`) and the EOT position per class ``[C]``."""
        n, m = self.n_prefix, self.n_suffix
        ids = torch.zeros(len(labels), self.context_length, dtype=torch.long)
        slots = torch.full_like(ids, -1)
        eot = torch.empty(len(labels), dtype=torch.long)
        for row, name in enumerate(labels):
            tokens = self._tokens(name)
            suffix_start = 1 + n + len(tokens)
            ids[row, 0] = self.sot_id
            ids[row, 1 + n:suffix_start] = torch.tensor(tokens, dtype=torch.long)
            ids[row, suffix_start + m] = self.eot_id
            if self.layout == "shared":
                slots[row, 1:1 + n] = torch.arange(n)
                slots[row, suffix_start:suffix_start + m] = torch.arange(n, n + m)
            else:  # row = absolute position; rows past the EOT are masked out by the causal attention
                slots[row, 1:1 + n] = torch.arange(1, 1 + n)
                slots[row, suffix_start:suffix_start + m] = torch.arange(suffix_start, suffix_start + m)
            eot[row] = suffix_start + m
        return ids.to(device), slots.to(device), eot.to(device)

    def _prompt_rows(self) -> torch.Tensor:
        return torch.cat([self.prefix, self.suffix]) if self.layout == "shared" else self.table

    def forward(self, labels: Sequence[str]) -> torch.Tensor:
        """Class names -> text embeddings ``[C, D]`` (projected, not normalised)."""
        if isinstance(labels, str):
            raise TypeError("labels must be a sequence of class names, not a single string")
        clip = self.clip
        cast_dtype = clip.transformer.get_cast_dtype()
        ids, slots, eot = self._layout(labels, clip.token_embedding.weight.device)
        prompts = self._prompt_rows()
        if prompts.shape[0] == 0:  # no prompts at all: index into a dummy row that is never selected
            prompts = prompts.new_zeros(1, prompts.shape[1])
        is_prompt = (slots >= 0).unsqueeze(-1)
        x = torch.where(is_prompt, prompts[slots.clamp(min=0)].to(cast_dtype),
                        clip.token_embedding(ids).to(cast_dtype))
        x = x + clip.positional_embedding.to(cast_dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        projection = clip.text_projection
        if isinstance(projection, nn.Linear):
            x = projection(x)
        elif projection is not None:
            x = x @ projection
        return x


class TemporalTransformer(nn.Module):
    """Learned temporal position embedding, pre-LN Transformer blocks over the frames, mean over time.

    No residual around the whole model and no output projection: with zero layers and a zero position
    embedding it is the plain frame average, which is what zero-shot CLIP does. ``max_frames`` positions are
    learned (training uses the clips' frame count); clips of another length get them resampled.

    ``activation``: ``gelu`` (exact GELU, torch's Transformer layer, our default for training) or
    ``quick_gelu`` (CLIP's ``x * sigmoid(1.702 x)``, which the official temporal blocks use; the blocks are
    otherwise the same pre-LN layers, so official weights load into them one to one).
    """

    def __init__(self, dim: int, layers: int = 2, heads: int = 8, max_frames: int = 32,
                 activation: str = "gelu"):
        super().__init__()
        _check_temporal(dim, layers, heads, max_frames, activation,
                        names=("layers", "heads", "max_frames", "activation"))
        self.activation = activation
        self.max_frames = max_frames
        self.position = nn.Parameter(torch.empty(max_frames, dim).normal_(std=INIT_STD))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0,
                                       activation="gelu" if activation == "gelu" else _quick_gelu,
                                       batch_first=True, norm_first=True)
            for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B, D]``."""
        x = x + resample_positions(self.position, x.shape[1]).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=1)


def _check_temporal(dim: int, layers: int, heads: int, max_frames: int, activation: str,
                    names: tuple[str, str, str, str]) -> None:
    """The temporal model's settings, each error naming the parameter as the caller spells it (``names``:
    those of ``layers``, ``heads``, ``max_frames``, ``activation``)."""
    layers_name, heads_name, frames_name, activation_name = names
    if layers < 0:
        raise out_of_range(layers_name, layers, "0 or more")
    if heads < 1:
        raise out_of_range(heads_name, heads, "at least 1")
    if dim % heads:
        raise out_of_range(heads_name, heads, f"a divisor of the embedding width {dim}")
    if max_frames < 1:
        raise out_of_range(frames_name, max_frames, "at least 1")
    if activation not in TEMPORAL_ACTIVATIONS:
        raise out_of_range(activation_name, repr(activation), f"one of {', '.join(TEMPORAL_ACTIVATIONS)}")


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class PromptCLIP(VideoTextModel):
    """Frozen CLIP + learned text prompts + a temporal Transformer over frame embeddings.

    With ``frame_norm`` (the default) frame embeddings are L2-normalised before the temporal model (as
    zero-shot CLIP normalises before averaging), so an empty temporal model reduces exactly to the zero-shot
    video embedding. The official code feeds the raw projected embeddings (``frame_norm=False``), and its
    published checkpoints were trained that way. ``prompt_layout`` and ``temporal_activation`` choose between
    our layout and activation and the official ones (see :class:`PromptedTextEncoder`,
    :class:`TemporalTransformer`); the defaults are what ``train-prompts`` trains.
    """

    method = "promptclip"
    frame_features_cacheable = True

    def __init__(self, backbone: Backbone, n_prefix: int = 16, n_suffix: int = 16, temporal_layers: int = 2,
                 temporal_heads: int = 8, max_frames: int = 32, temperature: float = TEMPERATURE,
                 prompt_layout: str = "shared", temporal_activation: str = "gelu", frame_norm: bool = True):
        super().__init__(backbone)
        if not temperature > 0:
            raise out_of_range("temperature", temperature, "greater than 0")
        if prompt_layout not in PROMPT_LAYOUTS:
            raise out_of_range("prompt_layout", repr(prompt_layout), f"one of {', '.join(PROMPT_LAYOUTS)}")
        _check_temporal(backbone.embed_dim, temporal_layers, temporal_heads, max_frames, temporal_activation,
                        names=("temporal_layers", "temporal_heads", "max_frames", "temporal_activation"))
        self.clip.requires_grad_(False)
        self.clip.eval()
        self.text_encoder = PromptedTextEncoder(backbone, n_prefix=n_prefix, n_suffix=n_suffix,
                                                layout=prompt_layout)
        device = backbone.device
        self.temporal = TemporalTransformer(backbone.embed_dim, layers=temporal_layers, heads=temporal_heads,
                                            max_frames=max_frames, activation=temporal_activation).to(device)
        self.frame_norm = bool(frame_norm)
        self.temporal_layers = temporal_layers
        self.temporal_heads = temporal_heads
        self.temperature = float(temperature)
        # A constant, not a parameter; a non-persistent buffer so it follows .to(device) and stays out of
        # checkpoints.
        self.register_buffer("_inv_temperature", torch.tensor(1.0 / self.temperature, device=device),
                             persistent=False)

    def train(self, mode: bool = True) -> "PromptCLIP":
        """Train the prompts and temporal model; the frozen CLIP stays in eval mode."""
        super().train(mode)
        self.clip.eval()
        return self

    def aggregate(self, frame_features: torch.Tensor) -> torch.Tensor:
        if self.frame_norm:
            frame_features = normalize(frame_features)
        return normalize(self.temporal(frame_features.float()))

    def encode_labels(self, labels: Sequence[str]) -> torch.Tensor:
        return normalize(self.text_encoder(labels))

    def text_cache_key(self) -> str:
        """Keyed on the prompt values themselves, so embeddings of trained prompts are reused across runs
        and a prompt update can never hit a stale entry."""
        digest = hashlib.sha256()
        digest.update(f"{self.text_encoder.layout}:{self.text_encoder.n_prefix}:{self.text_encoder.n_suffix}"
                      .encode())
        for _, tensor in sorted(self.text_encoder.named_parameters()):
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return f"promptclip|prompts={digest.hexdigest()[:24]}"

    @property
    def logit_scale(self) -> torch.Tensor:
        return self._inv_temperature

    @staticmethod
    def stored_shape_problem(hparams: dict, shapes: dict[str, tuple[int, ...]]) -> str | None:
        """Prompt lengths, frames and layers must be those of the stored prompts, positions and blocks."""
        position = shapes.get("temporal.position", (0, 0))
        if not 1 <= position[0] <= MAX_FRAMES:
            return f"the stored temporal position embedding has {position[0]} rows (1 to {MAX_FRAMES} frames)"
        layout = hparams.get("prompt_layout", "shared")
        if layout not in PROMPT_LAYOUTS:
            return f"prompt_layout {layout!r} is not one of {', '.join(PROMPT_LAYOUTS)}"
        if hparams.get("temporal_activation", "gelu") not in TEMPORAL_ACTIVATIONS:
            return f"temporal_activation {hparams['temporal_activation']!r} is not one of " \
                   f"{', '.join(TEMPORAL_ACTIVATIONS)}"
        if layout == "official":
            rows = shapes.get("text_encoder.table", (0,))[0]
            used = hparams.get("n_prefix", 16) + hparams.get("n_suffix", 16) + 3
            if not 0 <= hparams.get("n_prefix", 16) <= rows or not 0 <= hparams.get("n_suffix", 16) or used > rows:
                return f"prompt lengths {hparams.get('n_prefix', 16)}+{hparams.get('n_suffix', 16)} do not fit " \
                       f"the stored {rows}-row prompt table"
            stored = {}
        else:
            stored = {"n_prefix": shapes.get("text_encoder.prefix", (0,))[0],
                      "n_suffix": shapes.get("text_encoder.suffix", (0,))[0]}
        stored.update({"max_frames": position[0],
                       "temporal_layers": len({name.split(".")[2] for name in shapes
                                               if name.startswith("temporal.blocks.")})})
        for name, count in stored.items():
            if name in hparams and hparams[name] != count:
                return f"{name} is {hparams[name]} but the stored tensors hold {count}"
        heads = hparams.get("temporal_heads", 8)
        if not 1 <= heads <= max(position[1], 1):
            return f"temporal_heads is {heads}, more than the embedding width {position[1]}"
        return None

    def hparams(self) -> dict:
        return {
            "n_prefix": self.text_encoder.n_prefix,
            "n_suffix": self.text_encoder.n_suffix,
            "temporal_layers": self.temporal_layers,
            "temporal_heads": self.temporal_heads,
            "max_frames": self.temporal.max_frames,
            "temperature": self.temperature,
            "prompt_layout": self.text_encoder.layout,
            "temporal_activation": self.temporal.activation,
            "frame_norm": self.frame_norm,
        }
