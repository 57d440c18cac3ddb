"""Drafting configuration: model id, client settings, prices and the per-run budget.

The model id and prices are configuration, never code: a new model or a price
change is a settings edit. Prices are USD per million tokens.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agents.drafting.models import TokenUsage


class ModelPrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_write_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float = Field(ge=0)


# List prices at the time of writing (USD per million tokens; cache write is the 5-minute TTL price).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-sonnet-4-5": ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0, cache_write_per_mtok=3.75, cache_read_per_mtok=0.30),
    "claude-haiku-4-5": ModelPrice(input_per_mtok=1.0, output_per_mtok=5.0, cache_write_per_mtok=1.25, cache_read_per_mtok=0.10),
    "claude-opus-4-1": ModelPrice(input_per_mtok=15.0, output_per_mtok=75.0, cache_write_per_mtok=18.75, cache_read_per_mtok=1.50),
}
# An unknown model is priced as the most expensive known one, so the budget cap errs on the safe side.
FALLBACK_PRICE = DEFAULT_PRICES["claude-opus-4-1"]


class DrafterConfig(BaseModel):
    """Everything the drafting agent needs; the Dagster resource maps its fields (and EnvVars) onto this."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = Field(default=None, description="Anthropic API key; without one the template drafter is used.")
    base_url: str | None = Field(default=None, description="API base URL (tests point this at a local fake).")
    model: str = "claude-sonnet-4-5"
    max_tokens: int = Field(default=700, ge=64, le=8192)
    temperature: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Sent only when set (as an extra body field: the installed SDK's create() has no temperature argument).",
    )
    max_retries: int = Field(default=4, ge=0, le=10, description="SDK retries with backoff on 429/5xx/529.")
    timeout_s: float = Field(default=60.0, gt=0)
    batch_threshold: int = Field(default=25, ge=1, description="More items than this in one call use the Message Batches API.")
    batch_poll_interval_s: float = Field(default=30.0, ge=0)
    batch_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    budget_usd: float = Field(default=10.0, ge=0, description="Per-run cap; reaching it stops LLM drafting (templates take over).")
    batch_discount: float = Field(default=0.5, ge=0, le=1, description="Fraction of the list price charged for batched requests.")
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    max_due_days: int = Field(default=14, ge=1, le=60, description="A due date must fall within this many days after as-of.")

    @property
    def has_api_key(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value().strip())

    def price(self) -> ModelPrice:
        return self.prices.get(self.model, FALLBACK_PRICE)

    def cost_usd(self, usage: TokenUsage, *, batched: bool | None = None) -> float:
        return usage_cost(usage, self.price(), self.batch_discount if (usage.batched if batched is None else batched) else 1.0)


def usage_cost(usage: TokenUsage, price: ModelPrice, multiplier: float = 1.0) -> float:
    total = (
        usage.input_tokens * price.input_per_mtok
        + usage.output_tokens * price.output_per_mtok
        + usage.cache_creation_input_tokens * price.cache_write_per_mtok
        + usage.cache_read_input_tokens * price.cache_read_per_mtok
    )
    return total / 1_000_000 * multiplier


class Budget:
    """A per-run spending cap, shared by every LLM call of one `draft_all` run."""

    def __init__(self, cap_usd: float) -> None:
        self.cap_usd = cap_usd
        self.spent_usd = 0.0
        self.exhausted = False

    @property
    def remaining_usd(self) -> float:
        return max(self.cap_usd - self.spent_usd, 0.0)

    def allows(self, worst_case_usd: float) -> bool:
        """True if a call costing at most `worst_case_usd` keeps the run under the cap; else marks it exhausted."""
        if self.spent_usd + worst_case_usd > self.cap_usd:
            self.exhausted = True
            return False
        return True

    def charge(self, usd: float) -> None:
        self.spent_usd += usd
        if self.spent_usd >= self.cap_usd:
            self.exhausted = True


# The one environment variable naming the drafting model: the pipeline's DrafterSettings, the eval and the
# live-mode gate all read it, so the eval that unlocks live mode is the eval of the model live mode drafts with.
DRAFTER_MODEL_ENV = "SALES_SUPERVISOR_DRAFTER_MODEL"


def live_drafter_name(env: dict[str, str] | None = None) -> str:
    """The drafter name (as ``Drafter.name``) the pipeline will draft with under ``env``.

    Mirrors ``make_drafter``: Claude (``claude:<model>``) when ANTHROPIC_API_KEY is set, else ``template``.
    """
    import os

    env = dict(os.environ) if env is None else env
    if not (env.get("ANTHROPIC_API_KEY") or "").strip():
        return "template"
    return f"claude:{env.get(DRAFTER_MODEL_ENV) or DrafterConfig().model}"
