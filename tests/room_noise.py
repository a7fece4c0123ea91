"""Room sounds synthesised for the dictation tests, at levels a laptop microphone picks up in a classroom.

Levels are RMS in dBFS (0 dB = a full-scale sine's peak): a quiet room is about −60 to −45 dBFS,
a fan or a projector −40 to −30, speech near the microphone −25 to −20 (the course's samples: about −23).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * (10 ** (dbfs / 20) / np.sqrt(np.mean(x**2)))).astype(np.float32)


def level(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def coloured(seconds: float, exponent: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent: 0 white (hiss), 1 pink (rain, air), 2 brown (rumble)."""
    n = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freqs[0] = freqs[1]
    return at_level(np.fft.irfft(spectrum / freqs ** (exponent / 2), n), dbfs)


def hum(seconds: float, dbfs: float, mains: float = 50.0) -> np.ndarray:
    """Mains hum: 50 Hz and its harmonics, as an unshielded cable or a projector gives."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return at_level(sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3, 5)), dbfs)


def fan(seconds: float, dbfs: float, seed: int = 1) -> np.ndarray:
    """A fan: broadband noise strongest in the low end, a blade tone at 120 Hz and a slow wobble."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    body = coloured(seconds, 1.5, -30, seed) * (1 + 0.2 * np.sin(2 * np.pi * 0.7 * t))
    return at_level(body + 0.02 * np.sin(2 * np.pi * 120 * t), dbfs)


def keyboard(seconds: float, dbfs: float, seed: int = 3) -> np.ndarray:
    """Typing: short decaying clicks at random moments (five a second)."""
    rng = np.random.default_rng(seed)
    n, click = int(seconds * SAMPLE_RATE), 200
    x = np.zeros(n)
    for start in rng.integers(0, n - click, int(5 * seconds)):
        x[start : start + click] += rng.standard_normal(click) * np.exp(-np.arange(click) / 30)
    return at_level(x, dbfs)


ROOM = {  # name: a five-second clip
    "silencio digital": lambda: np.zeros(5 * SAMPLE_RATE, np.float32),
    "sala en silencio (siseo −70 dBFS)": lambda: coloured(5, 0, -70),
    "ruido rosa −45 dBFS": lambda: coloured(5, 1, -45),
    "ruido rosa −30 dBFS": lambda: coloured(5, 1, -30),
    "ruido marrón −35 dBFS": lambda: coloured(5, 2, -35),
    "zumbido de red 50 Hz −40 dBFS": lambda: hum(5, -40),
    "ventilador −35 dBFS": lambda: fan(5, -35),
    "teclado −35 dBFS": lambda: keyboard(5, -35),
}
