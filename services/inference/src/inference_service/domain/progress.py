"""Progress arithmetic shared by the read model and the workers' live progress messages."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rates:
    """Output tokens per second, and the seconds left at the pace so far (0 when unknown or done)."""

    tokens_per_second: float
    eta_seconds: float


def rates(done: int, total: int, output_tokens: int, elapsed_s: float) -> Rates:
    """Rates after `elapsed_s` seconds of work in which `done` of `total` records produced `output_tokens`."""
    if elapsed_s <= 0:
        return Rates(0.0, 0.0)
    tokens_per_second = output_tokens / elapsed_s
    remaining = max(total - done, 0)
    eta = remaining * elapsed_s / done if done > 0 else 0.0
    return Rates(tokens_per_second, eta)


def plan_shards(total: int, shard_size: int) -> list[tuple[int, int]]:
    """Splits records [0, total) into (offset, limit) slices of at most shard_size records."""
    if shard_size < 1:
        raise ValueError(f"shard size must be 1 or more, got {shard_size}")
    return [(offset, min(shard_size, total - offset)) for offset in range(0, total, shard_size)]
