"""Stage 1, normalize: raw bytes in, a clean article.v1 document or a reasoned refusal out (see `stage`)."""

from streams.stages.normalize.stage import NORMALIZE_VERSION, NormalizeConfig, normalize, parse_published

__all__ = ["NORMALIZE_VERSION", "NormalizeConfig", "normalize", "parse_published"]
