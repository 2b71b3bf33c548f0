"""Paper-protocol experiments: suppression and enhancement curves with a next-token probe.

Measures of one edit set (docs/method.md, "Measuring an edit"), each against the unedited model:
- probe_mass: probability mass of the concept's dictionary tokens as the next token after the
  concept's held-out probe prompts (mean over prompts, a probability in [0, 1]);
- control: mean log-probability (nats) of the right answer of the factual control task;
- word_rate: concept words per generated word in greedy generations on held-out prompts;
- perplexity: of the edited generations under the UNEDITED model (fluency; high = broken text).
Heads are ranked on the concept's rank prompts only; all measures use held-out prompts.
"""

from .curves import SELECTIONS, Curve, enhancement_curve, suppression_curve
from .measures import (
    MEASURES,
    Budget,
    HeldOut,
    continuation_logprobs,
    control_logprob,
    evaluate,
    next_token_probs,
    perplexity,
    probe_mass,
    word_rate,
)

__all__ = [
    "MEASURES",
    "SELECTIONS",
    "Budget",
    "Curve",
    "HeldOut",
    "continuation_logprobs",
    "control_logprob",
    "enhancement_curve",
    "evaluate",
    "next_token_probs",
    "perplexity",
    "probe_mass",
    "suppression_curve",
    "word_rate",
]
