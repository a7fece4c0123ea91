"""What an answer cost, from the statistics Ollama puts in its last line.

Ollama measures durations in nanoseconds and counts tokens (docs.ollama.com/api/usage):
`load_duration` loading the model, `prompt_eval_count`/`prompt_eval_duration` reading the prompt,
`eval_count`/`eval_duration` writing the answer, `total_duration` the whole request on the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

NS = 1e9  # nanoseconds in a second


@dataclass(frozen=True)
class AnswerStats:
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None

    @classmethod
    def from_ollama(cls, fields: Mapping) -> AnswerStats:
        """From the last line's fields (missing or non-numeric ones stay None)."""
        return cls(**{name: _count(fields.get(name)) for name in cls.__dataclass_fields__})

    @property
    def tokens_per_second(self) -> float | None:
        """Writing speed: tokens of the answer over the time spent writing them."""
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / (self.eval_duration / NS)

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds on the server before the first token of the answer: loading the model (if it was not
        loaded) plus reading the prompt (the image's tiles and the history included)."""
        if self.prompt_eval_duration is None:
            return None
        return ((self.load_duration or 0) + self.prompt_eval_duration) / NS

    @property
    def load_seconds(self) -> float | None:
        return None if self.load_duration is None else self.load_duration / NS

    def summary(self) -> str:
        """One short Spanish line, such as «12,3 tokens/s · primer token en 0,45 s · carga 0,10 s · 87 tokens»."""
        parts = []
        if self.tokens_per_second is not None:
            parts.append(f"{_number(self.tokens_per_second)} tokens/s")
        if self.time_to_first_token is not None:
            parts.append(f"primer token en {_number(self.time_to_first_token, 2)} s")
        if self.load_seconds is not None:
            parts.append(f"carga del modelo {_number(self.load_seconds, 2)} s")
        if self.eval_count is not None:
            parts.append(f"{self.eval_count} tokens")
        return " · ".join(parts)

    def to_dict(self) -> dict:
        """Ollama's fields as it sent them, and the derived figures (seconds, tokens per second)."""
        derived = {
            "tokens_per_second": self.tokens_per_second,
            "time_to_first_token_s": self.time_to_first_token,
            "load_s": self.load_seconds,
        }
        return {**asdict(self), **{k: round(v, 4) for k, v in derived.items() if v is not None}}


def _count(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _number(value: float, decimals: int = 1) -> str:
    return f"{value:.{decimals}f}".replace(".", ",")
