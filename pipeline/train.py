"""Training: sparse weighted matrix → truncated SVD → user/item factors, content vectors, popularity, 2-D map."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from pipeline.data import InteractionLog
from reccore.weighting import Scheme, item_weights, weight_rows

POPULARITY_CHUNK_ROWS = 4_000_000
POPULARITY_HALF_LIFE_DAYS = 30.0
RIDGE_ALPHA = 1.0
SVD_POWER_ITERATIONS = 4  # see truncated_svd; the Spark engine runs the same number (pipeline/spark/svd.py)
MIN_SINGULAR_VALUE = 1e-6  # a zero singular value would make fold-in divide by zero


@dataclass(frozen=True)
class ModelConfig:
    """The model's hyperparameters: what the tuner searches and the manifest records.

    The score is ``x·V·f(Σ)·Vᵀ`` for a weighted interaction row ``x``, with the spectral
    filter ``f(σ) = σ^β · σ²/(σ² + λ)``, ``λ = shrinkage · mean(σ²)`` over the kept factors
    (``shrinkage`` = 0: no shrinkage, the Σ^β model). The input row is weighted by
    ``weighting``, with entries below ``min_rating`` dropped, optionally centred per user,
    and each item scaled by its user count to the power ``-pop_alpha``.
    """

    factors: int = 50
    weighting: Scheme = "log"
    scaling: float = 0.5
    shrinkage: float = 0.0
    pop_alpha: float = 0.0
    min_rating: float = 0.0
    centre: bool = False

    @property
    def label(self) -> str:
        parts = [f"SVD k={self.factors}", self.weighting]
        if self.scaling:
            parts.append(f"Σ^{self.scaling:g}")
        if self.shrinkage:
            parts.append(f"shrink {self.shrinkage:g}")
        if self.pop_alpha:
            parts.append(f"pop^-{self.pop_alpha:g}")
        if self.min_rating:
            parts.append(f"rating ≥ {self.min_rating:g}")
        if self.centre:
            parts.append("centred")
        return ", ".join(parts)

    def params(self) -> dict[str, object]:
        """JSON-ready, for the manifest and ``/health``."""
        return {
            "factors": self.factors,
            "weighting": self.weighting,
            "scaling": self.scaling,
            "shrinkage": self.shrinkage,
            "pop_alpha": self.pop_alpha,
            "min_rating": self.min_rating,
            "centre": self.centre,
        }

    def with_(self, **changes: object) -> ModelConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass
class TrainedModel:
    """Everything training produces, as arrays aligned with the log's user and item codes."""

    user_factors: np.ndarray  # float32 (n_users, k) = X·Q·Σ⁻² (= X·V·Σ⁻¹ when β = 0)
    item_factors: np.ndarray  # float32 (n_items, k) = V·Σ^(1+β/2) (β = scaling, 0: V·Σ), content vectors for cold items
    singular_values: np.ndarray  # float32 (k,)
    item_weights: np.ndarray  # float32 (n_items,)
    content_based: np.ndarray  # bool (n_items,)
    popularity: np.ndarray  # float32 (n_items,)
    item_map: np.ndarray  # float32 (n_items, 2)
    weighting: dict[str, object]  # scheme + parameters fold-in needs
    n_pairs: int  # distinct (user, item) pairs: the matrix's non-zeros


def interaction_matrix(log: InteractionLog) -> sp.csr_matrix:
    """Raw user×item strengths (repeat interactions summed), sparse; never densified."""
    matrix = sp.csr_matrix(
        (log.weights.astype(np.float32), (log.users, log.items)), shape=(log.n_users, log.n_items), dtype=np.float32
    )
    matrix.sum_duplicates()
    return matrix


def weighted_matrix(
    raw: sp.csr_matrix, scheme: Scheme, pop_alpha: float = 0.0, min_rating: float = 0.0, centre: bool = False
) -> tuple[sp.csr_matrix, np.ndarray, dict[str, object]]:
    """Apply the confidence weighting; returns the matrix, the per-item weights and the fold-in parameters."""
    kept = raw.data >= min_rating
    document_freq = np.bincount(raw.indices[kept], minlength=raw.shape[1])
    active_rows = np.diff(raw.indptr) > 0
    row_sums = np.asarray(raw.sum(axis=1)).ravel()
    avg_row_length = float(row_sums[active_rows].mean()) if active_rows.any() else 1.0
    weights = item_weights(document_freq, int(active_rows.sum()), scheme, pop_alpha)
    options = {"min_rating": min_rating, "centre": centre}
    data = weight_rows(raw.indptr, raw.indices, raw.data, weights, scheme, avg_row_length, min_rating, centre)
    weighted = sp.csr_matrix((data, raw.indices, raw.indptr), shape=raw.shape)
    return weighted, weights, {"scheme": scheme, "avg_row_length": avg_row_length, **options}


def spectral_factors(
    weighted: sp.csr_matrix, v: np.ndarray, sigma: np.ndarray, scaling: float, shrinkage: float
) -> tuple[np.ndarray, np.ndarray]:
    """User and item vectors for the filter ``f(σ) = σ^β·σ²/(σ²+λ)`` on a fitted SVD.

    Items are ``Q = V·Σ·f^½`` and users ``p = x·Q·Σ⁻² = x·V·f^½·Σ⁻¹``, so ``p·q = x·V·f·Vᵀ``
    for any filter, and the service's fold-in ``x·Q·Σ⁻²`` needs to know nothing about it.
    With no shrinkage this is the Σ^β model, ``Q = V·Σ^(1+β/2)``.
    """
    item_factors = spectral_item_factors(v, sigma, scaling, shrinkage)
    # Users are stored as their own fold-in (x·Q·Σ⁻²), so known and folded-in users are scored identically.
    squared = np.square(sigma.astype(np.float64)).astype(np.float32)
    user_factors = np.asarray(weighted @ (item_factors / squared), dtype=np.float32)
    return user_factors, item_factors


def spectral_item_factors(v: np.ndarray, sigma: np.ndarray, scaling: float, shrinkage: float) -> np.ndarray:
    """``Q = V·Σ·f^½`` for the filter of :func:`spectral_factors` (both engines call this)."""
    sigma64 = sigma.astype(np.float64)
    squared = np.square(sigma64)
    spectral = sigma64**scaling
    if shrinkage > 0:
        spectral = spectral * squared / (squared + shrinkage * squared.mean())
    return (v * (sigma64 * np.sqrt(spectral))).astype(np.float32)


def svd_rank(factors: int, shape: tuple[int, int]) -> int:
    """The k actually computed: ``factors``, capped below the matrix's smaller side."""
    k = min(factors, min(shape) - 1)
    if k < 1:
        raise ValueError(f"factors: the matrix {shape} is too small for an SVD")
    return k


def truncated_svd(matrix: sp.csr_matrix, factors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Right singular vectors ``V`` (n_items, k) and singular values ``Σ`` of a sparse matrix."""
    k = svd_rank(factors, matrix.shape)
    # n_iter=4 power iterations: the leading singular values agree with n_iter=7 to < 0.1% on the
    # synthetic and MovieLens data, and each iteration is two passes over the sparse matrix.
    _, sigma, vt = randomized_svd(matrix, n_components=k, n_iter=SVD_POWER_ITERATIONS, random_state=seed)
    sigma = np.maximum(sigma, MIN_SINGULAR_VALUE)
    return vt.T.astype(np.float32), sigma.astype(np.float32)


def content_vectors(log: InteractionLog, item_factors: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """Predict latent vectors from metadata (ridge on one-hot category + log price), fit on warm items."""
    return ContentRegression(item_features(log), warm).predict(np.asarray(item_factors, dtype=np.float32))


class ContentRegression:
    """Ridge regression from item features to latent vectors, fit on the ``warm`` items.

    Everything that depends on the features alone is computed once, so predicting for many sets
    of latent vectors (the tuner's trials) costs two small products each. Written out rather than
    scikit-learn's ``Ridge`` because importing ``sklearn.linear_model`` alone costs ~0.2 s.
    """

    def __init__(self, features: np.ndarray, warm: np.ndarray, alpha: float = RIDGE_ALPHA) -> None:
        n_warm = int(warm.sum())
        self.usable = n_warm >= 2
        x = features.astype(np.float64)
        x_mean = x[warm].mean(axis=0) if self.usable else np.zeros(x.shape[1])
        xc = np.where(warm[:, None], x - x_mean, 0.0)  # cold rows take no part in the fit
        gram = xc.T @ xc + alpha * np.eye(x.shape[1])
        # weights = solve(gram, xcᵀ·(y - ȳ)) = solver·y - solver·1·ȳ, with ȳ = mean·y: linear in y.
        solver = np.linalg.solve(gram, xc.T)
        mean = warm / max(n_warm, 1)
        self.solver = solver.astype(np.float32)
        self.solver_sums = solver.sum(axis=1)
        self.mean = mean.astype(np.float32)
        self.centred = (x - x_mean).astype(np.float32)

    def predict(self, item_factors: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Predicted vectors of every item (or of ``rows``), from ``item_factors``' warm rows."""
        target = self.centred if rows is None else self.centred[rows]
        if not self.usable:
            return np.zeros((len(target), item_factors.shape[1]), dtype=np.float32)
        y_mean = (self.mean @ item_factors).astype(np.float64)
        weights = (self.solver @ item_factors).astype(np.float64) - np.outer(self.solver_sums, y_mean)
        return (target @ weights.astype(np.float32) + y_mean.astype(np.float32)).astype(np.float32)


def item_features(log: InteractionLog) -> np.ndarray:
    """One-hot category and standardised log price per catalogue item."""
    _, category = np.unique(np.asarray(log.categories, dtype=str), return_inverse=True)
    onehot = np.zeros((log.n_items, int(category.max()) + 1 if log.n_items else 0), dtype=np.float32)
    onehot[np.arange(log.n_items), category] = 1.0
    log_price = np.log1p(np.maximum(log.prices.astype(np.float64), 0.0))
    spread = log_price.std() or 1.0
    price = ((log_price - log_price.mean()) / spread).astype(np.float32)
    return np.column_stack([onehot, price, onehot * price[:, None]])


def recency_popularity(log: InteractionLog, half_life_days: float = POPULARITY_HALF_LIFE_DAYS) -> np.ndarray:
    """Interaction weight per item, each decayed by its age relative to the newest interaction.

    Summed a chunk of rows at a time, so the float64 temporaries stay ~100 MB at any log size.
    """
    if log.n_interactions == 0:
        return np.zeros(log.n_items, dtype=np.float32)
    newest, totals = log.timestamps.max(), np.zeros(log.n_items)
    for start in range(0, log.n_interactions, POPULARITY_CHUNK_ROWS):
        rows = slice(start, start + POPULARITY_CHUNK_ROWS)
        age_days = (newest - log.timestamps[rows]).astype(np.float64) / 86_400.0
        decayed = log.weights[rows].astype(np.float64) * np.exp2(-age_days / half_life_days)
        totals += np.bincount(log.items[rows], weights=decayed, minlength=log.n_items)
    return totals.astype(np.float32)


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """PCA of the row-normalised vectors (cosine geometry, so the map is not dominated by popular items)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    centred = unit - unit.mean(axis=0)
    _, _, components = np.linalg.svd(centred.T @ centred)
    return (centred @ components[:2].T).astype(np.float32)


def train(
    log: InteractionLog,
    factors: int = 50,
    scheme: Scheme = "bm25",
    seed: int = 42,
    scaling: float = 0.0,
    *,
    shrinkage: float = 0.0,
    pop_alpha: float = 0.0,
    min_rating: float = 0.0,
    centre: bool = False,
) -> TrainedModel:
    """Fit the hybrid model on ``log`` (see :class:`ModelConfig` for the hyperparameters).

    ``scaling`` is the exponent β in the score ``x·V·Σ^β·Vᵀ``: 0 is the plain projection
    (PureSVD); β > 0 damps the weak factors; ``shrinkage`` multiplies the filter by
    ``σ²/(σ²+λ)``. The service's fold-in ``x·Q·Σ⁻²`` reproduces a training user's vector
    exactly whatever the filter (see :func:`spectral_factors`).
    """
    raw = interaction_matrix(log)
    weighted, weights, weighting = weighted_matrix(raw, scheme, pop_alpha, min_rating, centre)
    v, sigma = truncated_svd(weighted, factors, seed)
    user_factors, item_factors = spectral_factors(weighted, v, sigma, scaling, shrinkage)
    warm = np.bincount(raw.indices, minlength=log.n_items) > 0
    return assemble(log, item_factors, user_factors, sigma, weights, warm, weighting, int(raw.nnz))


def assemble(
    log: InteractionLog,
    item_factors: np.ndarray,
    user_factors: np.ndarray,
    sigma: np.ndarray,
    weights: np.ndarray,
    warm: np.ndarray,
    weighting: dict[str, object],
    n_pairs: int,
) -> TrainedModel:
    """The per-item rest of training, shared by both engines: content vectors for cold items, popularity, map."""
    item_factors = np.array(item_factors, dtype=np.float32)
    cold = ~warm
    if cold.any():
        item_factors[cold] = content_vectors(log, item_factors, warm)[cold]
    return TrainedModel(
        user_factors=np.asarray(user_factors, dtype=np.float32),
        item_factors=item_factors,
        singular_values=np.asarray(sigma, dtype=np.float32),
        item_weights=weights,
        content_based=cold,
        popularity=recency_popularity(log),
        item_map=project_2d(item_factors),
        weighting=weighting,
        n_pairs=n_pairs,
    )


def train_config(log: InteractionLog, config: ModelConfig, seed: int = 42) -> TrainedModel:
    """:func:`train` with the hyperparameters of ``config``."""
    return train(
        log, config.factors, config.weighting, seed, config.scaling, shrinkage=config.shrinkage,
        pop_alpha=config.pop_alpha, min_rating=config.min_rating, centre=config.centre,
    )  # fmt: skip
