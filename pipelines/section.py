"""Base class of every recipe section (stage packages define theirs with it; ``recipe.py`` assembles them)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
