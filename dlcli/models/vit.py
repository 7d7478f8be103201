"""`vit`: a small vision transformer (Dosovitskiy et al., 2021) sized for 28x28/32x32 inputs.

Attention is written out (qkv projection, scaled dot product, softmax) instead of using
nn.MultiheadAttention so that the ONNX graph is plain MatMul/Softmax that every runtime and the
int8 quantizer understand.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlcli.errors import UsageError
from dlcli.models.registry import MAX_DEPTH, MAX_WIDTH, MODELS, ModelSpec
from dlcli.validation import Range


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise UsageError(f"vit dim ({dim}) must be divisible by heads ({heads}).")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(
        self, input_shape: Sequence[int], num_classes: int, patch: int, dim: int, depth: int,
        heads: int, mlp_ratio: float, dropout: float,
    ) -> None:
        super().__init__()
        c, h, w = (int(d) for d in input_shape)
        if h % patch or w % patch:
            raise UsageError(f"vit patch size {patch} must divide the input size {h}x{w}.")
        self.patch_embed = nn.Conv2d(c, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (h // patch) * (w // patch) + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(tokens))[:, 0])


def vit(
    input_shape: Sequence[int],
    num_classes: int,
    patch: int = 4,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    dropout: float = 0.0,
) -> nn.Module:
    """ViT with `patch`x`patch` patches, `depth` pre-norm blocks of width `dim`, a class token."""
    return VisionTransformer(input_shape, num_classes, patch, dim, depth, heads, mlp_ratio, dropout)


MODELS.add("vit", ModelSpec(
    vit, "small vision transformer (patch 4, dim 64, depth 4, 4 heads)",
    ranges={"patch": Range(ge=1, le=1024), "dim": Range(ge=1, le=MAX_WIDTH), "depth": Range(ge=1, le=MAX_DEPTH),
            "heads": Range(ge=1, le=1024), "mlp_ratio": Range(gt=0, le=64), "dropout": Range(ge=0, lt=1)},
))
