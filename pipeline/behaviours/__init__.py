"""Service behaviours QA leads coach (issue 18): empathy, ownership, saying no, owning mistakes,
talking down, and verbatim reciting. Patterns are data (pipeline/data/behaviours.toml)."""
