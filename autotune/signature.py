"""Shape signatures, the text that keys results by input shapes (``attention_mask=1x128;
input_ids=1x128``; ``sr=`` is a scalar): written and read here, once (standard library only)."""

from __future__ import annotations


def shape_signature(shapes: dict[str, tuple[int, ...]]) -> str:
    """Canonical text of the shapes, e.g. ``attention_mask=1x128;input_ids=1x128``."""
    return ";".join(f"{k}={'x'.join(map(str, v))}" for k, v in sorted(shapes.items()))


def parse_signature(signature: str) -> dict[str, tuple[int, ...]]:
    """The shapes a :func:`shape_signature` stands for; {} for text that is not one."""
    out: dict[str, tuple[int, ...]] = {}
    for part in signature.split(";"):
        name, _, dims = part.partition("=")
        if name:
            try:
                out[name] = tuple(int(d) for d in dims.split("x")) if dims else ()
            except ValueError:
                return {}
    return out
