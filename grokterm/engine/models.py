"""Models: an embedding MLP for modular tasks, an image MLP, a small decoder-only transformer."""

from __future__ import annotations

import math

import torch
from torch import nn

from grokterm.config import ImageMLP, LiuToyModel, ModularMLP, TransformerModel

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def mlp_layers(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class EmbeddingMLP(nn.Module):
    """Embed a and b with one shared table, concatenate, classify with an MLP."""

    def __init__(self, spec: ModularMLP, vocab_size: int, n_classes: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, spec.embed_dim)
        self.mlp = mlp_layers([2 * spec.embed_dim, *spec.hidden, n_classes], spec.activation)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pair = self.embed(tokens[:, :2]).flatten(1)
        return self.mlp(pair)


class ImageClassifier(nn.Module):
    def __init__(self, spec: ImageMLP, input_dim: int, n_classes: int):
        super().__init__()
        self.mlp = mlp_layers([input_dim, *spec.hidden, n_classes], spec.activation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.mlp(images.flatten(1))


class Attention(nn.Module):
    """Causal multi-head attention with separate Q, K, V, O matrices (so each is a 2-D weight)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, self.n_heads, width // self.n_heads).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        mixed = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(mixed.transpose(1, 2).reshape(batch, seq, width))


class Block(nn.Module):
    def __init__(self, spec: TransformerModel):
        super().__init__()
        norm = nn.LayerNorm if spec.layer_norm else nn.Identity
        self.norm_attn = norm(spec.d_model)
        self.attn = Attention(spec.d_model, spec.n_heads)
        self.norm_mlp = norm(spec.d_model)
        self.mlp_in = nn.Linear(spec.d_model, spec.d_mlp)
        self.mlp_out = nn.Linear(spec.d_mlp, spec.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_attn(x))
        return x + self.mlp_out(torch.relu(self.mlp_in(self.norm_mlp(x))))


class Transformer(nn.Module):
    """Tokens [a, b, =] -> logits over the answer, read at the last position."""

    def __init__(self, spec: TransformerModel, vocab_size: int, n_classes: int, seq_len: int = 3):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, spec.d_model)
        self.pos_embed = nn.Parameter(torch.zeros(seq_len, spec.d_model))
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layers))
        self.norm_final = nn.LayerNorm(spec.d_model) if spec.layer_norm else nn.Identity()
        self.unembed = nn.Linear(spec.d_model, n_classes, bias=False)
        if spec.init == "nanda":
            self._nanda_init(spec.d_model, n_classes)

    def _nanda_init(self, d_model: int, n_classes: int) -> None:
        # Nanda et al.: weights ~ N(0, 1/d_model), the unembedding ~ N(0, 1/d_vocab), biases 0.
        with torch.no_grad():
            for name, param in self.named_parameters():
                if "norm" in name:
                    continue
                if name.endswith("bias"):
                    param.zero_()
                elif name.startswith("unembed"):
                    param.normal_(0, 1 / math.sqrt(n_classes))
                else:
                    param.normal_(0, 1 / math.sqrt(d_model))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos_embed[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.norm_final(x[:, -1]))


class LiuToy(nn.Module):
    """E_a + E_b through a tanh decoder; logits are minus the squared distance of the output
    to each class's fixed random template, so argmax is the nearest template."""

    def __init__(self, spec: LiuToyModel, vocab_size: int, n_classes: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, spec.embed_dim)
        with torch.no_grad():
            self.embed.weight.uniform_(-0.5, 0.5)
        self.decoder = mlp_layers([spec.embed_dim, *spec.hidden, spec.out_dim], "tanh")
        self.register_buffer("templates", torch.randn(n_classes, spec.out_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.embed(tokens[:, 0]) + self.embed(tokens[:, 1]))
        return -(out.unsqueeze(1) - self.templates.unsqueeze(0)).pow(2).sum(-1)


def build_model(spec, *, vocab_size: int, input_dim: int, n_classes: int) -> nn.Module:
    if isinstance(spec, LiuToyModel):
        model: nn.Module = LiuToy(spec, vocab_size, n_classes)
    elif isinstance(spec, ModularMLP):
        model = EmbeddingMLP(spec, vocab_size, n_classes)
    elif isinstance(spec, ImageMLP):
        model = ImageClassifier(spec, input_dim, n_classes)
    else:
        model = Transformer(spec, vocab_size, n_classes)
    if spec.init_scale != 1.0:
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(spec.init_scale)
    return model


def weight_norm(model: nn.Module) -> torch.Tensor:
    """‖θ‖₂ over all parameters."""
    return torch.sqrt(sum(p.detach().pow(2).sum() for p in model.parameters()))


def rescale_to_norm(model: nn.Module, target: float) -> None:
    """Omnigrok's constraint: θ ← θ · target / ‖θ‖."""
    with torch.no_grad():
        factor = target / weight_norm(model)
        for param in model.parameters():
            param.mul_(factor)
