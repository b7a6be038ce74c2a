"""RQ-VAE (residual-quantised variational autoencoder): the semantic IDs of items from their embeddings,
as TIGER and GAMER build them. `fit_codes` trains it and codes every item; `gamer.tokenizers.train_rqvae`
makes the codes a tokenizer (collision handling, the record of what the input forces).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

# ---- the model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RQVAEConfig:
    """Training knobs of `fit_codes`; levels and codebook size are its arguments (`build_tokenizer` picks them)."""

    # The authors use 2048-1024-512-256-128-64; three layers are enough for 32-256-d inputs.
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    e_dim: int = 32  # latent and code dimension, as in the authors' RQ-VAE
    epochs: int = 500  # the authors run 20,000 epochs on 168k items; profiles lower it
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    commitment: float = 0.25  # beta of VQ-VAE: pulls the encoder towards its codes
    kmeans_iters: int = 20
    # k-means initialisation runs on at most this many latents (a seeded sample): ~8 per code at 8192.
    kmeans_max_points: int = 65_536
    # Codes no batch used in an epoch are re-seeded from random residuals of that level.
    reseed_dead_codes: bool = True


def _nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``[n, d]`` points, ``[k, d]`` centroids -> ``[n]`` index of each point's nearest centroid (L2)."""
    chunk = max(1, 2**24 // len(centroids))  # bounds the [chunk, k] distance block to 64 MiB
    c_sq = (centroids**2).sum(dim=1)
    out = [torch.argmin(c_sq - 2.0 * part @ centroids.T, dim=1) for part in torch.split(x, chunk)]
    return torch.cat(out)


def _kmeans(x: torch.Tensor, k: int, *, iters: int, generator: torch.Generator) -> torch.Tensor:
    """``[k, d]`` centroids of ``x`` ``[n, d]``: k-means++ seeding, then Lloyd iterations.

    With fewer points than codes every point becomes a centroid and the rest repeat random points;
    the duplicates go unused and dead-code re-seeding moves them during training.
    """
    n = len(x)
    if n <= k:
        extra = torch.randint(n, (k - n,), generator=generator)
        return torch.cat([x, x[extra.to(x.device)]]).clone()
    pick = torch.empty(k, dtype=torch.long)
    pick[0] = torch.randint(n, (1,), generator=generator)
    closest = ((x - x[pick[0]]) ** 2).sum(dim=1)
    for j in range(1, k):
        # k-means++: the next centroid is a point drawn with probability proportional to squared distance.
        weights = closest.cpu().double()
        if weights.sum() <= 0:  # every point coincides with a centroid: any point will do
            weights = torch.ones(n, dtype=torch.double)
        pick[j] = torch.multinomial(weights, 1, generator=generator)
        closest = torch.minimum(closest, ((x - x[pick[j]]) ** 2).sum(dim=1))
    centroids = x[pick.to(x.device)].clone()
    for _ in range(iters):
        assign = _nearest(x, centroids)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
        if empty.any():  # an empty cluster restarts at a random point
            restart = torch.randint(n, (int(empty.sum()),), generator=generator)
            centroids[empty] = x[restart.to(x.device)]
    return centroids


def _mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]`` with ReLU between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        linear = nn.Linear(d_in, d_out)
        nn.init.xavier_normal_(linear.weight)  # as the authors' RQ-VAE
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ResidualVQAutoencoder(nn.Module):
    """MLP encoder -> L-level residual quantiser -> MLP decoder (RQ-VAE, Zeghidour et al.; TIGER).

    Level l quantises the residual left by levels < l to its nearest code, so the code tuple goes
    from coarse to fine. The decoder sees the sum of the chosen codes through a straight-through
    estimator, so reconstruction gradients reach the encoder.
    """

    def __init__(self, in_dim: int, levels: int, codebook_size: int, config: RQVAEConfig) -> None:
        super().__init__()
        dims = [in_dim, *config.hidden_dims, config.e_dim]
        self.encoder = _mlp(dims)
        self.decoder = _mlp(dims[::-1])
        self.codebooks = nn.Parameter(torch.zeros(levels, codebook_size, config.e_dim))  # set by k-means

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """``z`` ``[n, e]`` -> codes ``[n, L]``, and per level the chosen code vectors and the residual input.

        Each level's chosen vectors ``[n, e]`` carry gradient to its codebook only; the next level's
        residual subtracts them without gradient, so the codebook loss alone moves the codes and the
        encoder is moved by reconstruction and commitment.
        """
        residual = z
        codes, chosen, residuals = [], [], []
        for codebook in self.codebooks:
            index = _nearest(residual.detach(), codebook.detach())
            codes.append(index)
            chosen.append(codebook[index])
            residuals.append(residual)
            residual = residual - chosen[-1].detach()
        return torch.stack(codes, dim=1), chosen, residuals

    def encode_codes(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``[n, in_dim]`` -> ``[n, L]`` codes, in batches, without gradients."""
        with torch.no_grad():
            return torch.cat([self.quantise(self.encoder(part))[0] for part in torch.split(x, batch_size)])


def _loss(
    model: ResidualVQAutoencoder, x: torch.Tensor, commitment: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Total loss, reconstruction MSE, codes ``[n, L]`` and residuals of one batch ``x`` ``[n, in_dim]``.

    total = MSE(x_hat, x) + mean over levels of [ ||sg(r_l) - e_l||^2 + beta ||r_l - sg(e_l)||^2 ]
    (sg = stop-gradient; the authors' `compute_loss` averages the levels the same way).
    """
    z = model.encoder(x)
    codes, chosen, residuals = model.quantise(z)
    quantised = torch.stack(chosen).sum(dim=0)
    z_hat = z + (quantised - z).detach()  # straight-through: forward uses the codes, backward skips them
    recon = torch.mean((model.decoder(z_hat) - x) ** 2)
    vq = sum(
        torch.mean((code - residual.detach()) ** 2) + commitment * torch.mean((residual - code.detach()) ** 2)
        for code, residual in zip(chosen, residuals, strict=True)
    )
    return recon + vq / len(residuals), recon, codes, residuals


def _init_codebooks(
    model: ResidualVQAutoencoder, x: torch.Tensor, config: RQVAEConfig, generator: torch.Generator
) -> None:
    """k-means on each level's residuals of (a sample of) the untrained encoder's latents."""
    sample = x
    if len(x) > config.kmeans_max_points:
        sample = x[torch.randperm(len(x), generator=generator)[: config.kmeans_max_points].to(x.device)]
    with torch.no_grad():
        residual = torch.cat([model.encoder(part) for part in torch.split(sample, config.batch_size)])
        for level in range(len(model.codebooks)):
            centroids = _kmeans(residual, model.codebooks.shape[1], iters=config.kmeans_iters, generator=generator)
            model.codebooks[level] = centroids
            residual = residual - centroids[_nearest(residual, centroids)]


def _reseed_dead_codes(
    model: ResidualVQAutoencoder, used: torch.Tensor, residuals: list[torch.Tensor], generator: torch.Generator
) -> int:
    """Move each code no item chose this epoch (``used`` ``[L, C]`` is False) onto a random residual.

    ``residuals`` are the last batch's per-level residuals ``[n, e]``. A dead code never wins an
    argmin, so the codebook loss never moves it; placed on live data it can win again. Returns how
    many codes moved.
    """
    moved = 0
    with torch.no_grad():
        for level, residual in enumerate(residuals):
            dead = torch.nonzero(~used[level]).ravel()
            if len(dead):
                pick = torch.randint(len(residual), (len(dead),), generator=generator).to(residual.device)
                model.codebooks[level, dead] = residual[pick].detach()
                moved += len(dead)
    return moved


def _curve(values: list[float], points: int = 50) -> list[float]:
    """At most ``points`` evenly spaced entries of ``values``, first and last included."""
    if len(values) <= points:
        return values
    at = np.unique(np.linspace(0, len(values) - 1, points).round().astype(int))
    return [values[i] for i in at]


def fit_codes(
    embeddings: np.ndarray,
    levels: int,
    codebook_size: int,
    *,
    seed: int = 0,
    config: RQVAEConfig | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Train an RQ-VAE on ``embeddings`` ``[n_items, d]``; every item's codes ``[n_items, levels]`` and
    what the training did (`gamer.tokenizers.train_rqvae` turns them into a tokenizer).

    ``levels`` x ``codebook_size`` codes (the paper: 4 x 8192). Steps: inputs centred and divided by
    their global std; codebooks initialised by k-means level by level; AdamW on the loss of `_loss`;
    after every epoch but the last, codes unused in it are re-seeded from random residuals of the
    epoch's last batch. Deterministic under ``seed`` on CPU (the global torch RNG is left untouched).
    """
    config = config or RQVAEConfig()
    x_np = np.asarray(embeddings, dtype=np.float32)
    if x_np.ndim != 2 or len(x_np) < 1 or not np.isfinite(x_np).all():
        raise ValueError(f"embeddings must be a finite [n_items, d] array, got shape {x_np.shape}")
    if levels < 1 or codebook_size < 1:
        raise ValueError(f"need levels >= 1 and codebook_size >= 1, got {levels} x {codebook_size}")
    mean, std = x_np.mean(axis=0), float(x_np.std())
    x = torch.from_numpy((x_np - mean) / (std if std > 0 else 1.0)).to(device)
    n = len(x)

    generator = torch.Generator().manual_seed(seed)  # data order, k-means, re-seeding (CPU, so portable)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # layer initialisation; CUDA generators untouched
        model = ResidualVQAutoencoder(x.shape[1], levels, codebook_size, config).to(device)
    _init_codebooks(model, x, config, generator)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    recon_history: list[float] = []
    reseeded = 0
    for epoch in range(config.epochs):
        model.train()
        used = torch.zeros(levels, codebook_size, dtype=torch.bool, device=device)
        recon_sum = 0.0
        for batch in torch.split(torch.randperm(n, generator=generator).to(device), config.batch_size):
            loss, recon, codes, residuals = _loss(model, x[batch], config.commitment)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            recon_sum += recon.item() * len(batch)
            for level in range(levels):
                used[level, codes[:, level]] = True
        recon_history.append(recon_sum / n)
        if config.reseed_dead_codes and epoch < config.epochs - 1:  # a code re-seeded after the last epoch is untrained
            reseeded += _reseed_dead_codes(model, used, residuals, generator)

    model.eval()
    codes = model.encode_codes(x, config.batch_size).cpu().numpy().astype(np.int64)
    meta = {
        "kind": "rqvae",
        "seed": seed,
        "levels": levels,
        "codebook_size": codebook_size,
        "n_items": n,
        "input_dim": int(x.shape[1]),
        "config": asdict(config),
        "input_scaling": "centred, divided by the global std",
        "recon_mse_first_epoch": recon_history[0] if recon_history else None,
        "recon_mse_last_epoch": recon_history[-1] if recon_history else None,
        "recon_mse_curve": _curve(recon_history),
        "dead_codes_reseeded": reseeded,
        "codes_used_per_level": [int(len(np.unique(codes[:, level]))) for level in range(levels)],
    }
    return codes, meta
