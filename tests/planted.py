"""A planted ground truth: a tiny Llama whose concept heads are known because they were set by hand.

planted_model(tokenizer, strength=1.0, seed=0) -> (HeadModel, info) builds a 3-layer, 4-head Llama
(hidden 64, head_dim 16, one key/value head per head, attention_bias=True so v_proj has a bias) for the
tiny tokenizer of tests/support.py. It starts from transformers' random init (weights ~ N(0, 0.02))
with norm gains ~ N(1, 0.2) as in tests/conftest.py, biases ~ N(0, 0.02) and o_proj's bias zero (so
nothing constant is written outside the heads), token embeddings ~ N(0, EMBED = 0.5) (a residual
stream of norm ~3.5 for the planted writes to compete with), and then sets three things by hand:

1. The vocabulary's geometry (lm_head, independent of `strength`). Every token of the five categories
   CATEGORIES (the shipped words' whole-word tokens, as rank_heads' dictionaries take them) gets its
   category's direction added to its random unembedding row, W_U[t] += CLUSTER * e_cat, with
   e_colours .. e_food orthonormal random directions ("orange", a colour and a food, gets both).
   Without it ~100 random colour rows among ~5000 in 64 dimensions cannot be raised together
   without raising as many random tokens; a real model's category tokens cluster too.

2. The concept head P = CONCEPT_HEAD = (1, 2) writes the colour directions at every position:
   - its q_proj rows and bias are zero, so all its scores are 0: uniform attention over the causal
     prefix, i.e. the mean of its value vectors so far, at every position including the last;
   - value channel 0 has weight 0 and bias 1 (a constant); channels 1..N_VARY get random weights
     (entries ~ N(0, 1/64)) and bias 0, so they vary from context to context (with the mean of the
     normalised inputs); its other channels keep their random init;
   - its o_proj columns are their random init plus `strength` times the planted part: channel 0 ->
     CONST_P * unit(mean of the colour tokens' normalised unembedding rows), the positive constant
     part that raises every colour token's logit; channel j = 1..N_VARY -> VARY * the normalised
     unembedding row of one colour token (picked by the seed). So P's write is, up to its random
     init, in the span of colour rows, and what varies lies in N_VARY (<= SOMP's k) colour rows,
     which the colour dictionary explains exactly while random-word dictionaries do not.

3. The generic answer head G = GENERIC_HEAD = (2, 1) is built the same way for EVERY category:
   channel 0 -> CONST_G * the sum over the five categories of unit(mean normalised row), channels
   1..5 -> VARY * one row of each category. It raises every category's tokens. Its varying channels'
   value weights are blind to P's planted columns, so flipping P does not move what G writes (else
   G's varying write along a number or food row would flip with P's write in its input).

No other head writes these directions: the other heads and the MLPs keep the random init; at the last
position their writes are ~0.02..0.1 long against P's ~8 and G's ~11 (and the embedding's ~3.5), and
point along no category (|cosine| with every category's mean row < 0.35).

Measured with the tiny tokenizer when this was written (strength 1, seed 0; seeds 1..4 alike):
- last-position logits above the non-category tokens': colour ~3.7, the other categories ~1.3..1.8;
  P flipped (alpha -1): colour ~-1.3, the others ~2.1..2.5 (the final RMS norm rescales); G flipped:
  colour ~1.0, the others ~-1.8..-2.5.
- mass_and_control on the "verify" eliciting contexts (n=8): colour mass 0.34 on colour contexts
  (0.25..0.47 over seeds); flipping P leaves 0.008x of it (<= 0.011x) and 1.4..2.4x of each other
  category's mass on its own contexts (>= 1.15x); flipping G leaves 0.14x of colour (<= 0.24x) and
  <= 0.08x of the others; flipping any other single head 0.99..1.01x of colour.
- rank_heads(m, None, "colours", refine=False): P's z 9.9 (5.3..9.9 over seeds), EVR 0.96, the only
  significant head; the next z < 1.8.

info = {"concept": P, "generic": G, "strength": strength}. `strength` scales only the planted parts
of P's and G's o_proj columns: at 0 the model is a random one (with the clustered unembedding) and
flipping P or G moves the masses by < 10%. The planted writes are as long as the embedding near strength
0.45 (P) and 0.3 (G). Seed 0, colours: strength 0 -> P's z -1.0, flipping P leaves 0.97x; 0.1 -> z
2.3, 0.14x; 0.3 -> z 8.1, 0.02x; 1 -> z 9.9, 0.008x.
"""

from __future__ import annotations

import warnings

import torch
import transformers as tf

import headpursuit_widget as hp

CATEGORIES = ("colours", "countries", "animals", "numbers", "food")
CONCEPT = "colours"
CONCEPT_HEAD = (1, 2)
GENERIC_HEAD = (2, 1)
N_LAYERS, N_HEADS, HIDDEN, HEAD_DIM = 3, 4, 64, 16
CLUSTER = 0.6  # length of the category direction added to each category token's unembedding row
CONST_P = 8.0  # length of P's constant write (per unit strength)
CONST_G = 5.0  # length of G's constant write along each category (per unit strength)
VARY = 1.0  # length of each varying channel's column (per unit strength)
EMBED = 0.5  # std of the token embeddings: a residual stream (norm ~3.5) for the planted writes to compete with
N_VARY = 6  # P's varying value channels (<= SOMP's default k of 10); G has one per category


def category_token_ids(tokenizer) -> dict[str, tuple[int, ...]]:
    """Each category's dictionary token ids (the shipped words, rule whole_word), as rank_heads uses them."""
    out = {}
    for name in CATEGORIES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # words the tiny vocabulary splits are left out, as in ranking
            out[name] = hp.Concept.from_words(name, hp.concepts.get(name).words, tokenizer).token_ids
    return out


def _config(vocab_size: int) -> tf.LlamaConfig:
    return tf.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=N_HEADS,
        num_key_value_heads=N_HEADS,  # one value head per head: v_proj's rows for head h are its own
        head_dim=HEAD_DIM,
        attention_bias=True,
        max_position_embeddings=256,
    )


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _plant(layer, head: int, const: torch.Tensor, vary: torch.Tensor, strength: float, gen, blind=None) -> None:
    """Make `head` of decoder layer `layer` attend uniformly and write `const` (d_model,) through value
    channel 0 (bias 1) plus the columns of `vary` (d_model, n) through channels 1..n (random value
    weights, no bias, blind to the span of the columns of `blind` when given), each times `strength`,
    on top of its random o_proj columns."""
    attn = layer.self_attn
    rows = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
    n = vary.shape[1]
    attn.q_proj.weight[rows] = 0.0  # zero queries: every score 0, uniform attention over the causal prefix
    attn.q_proj.bias[rows] = 0.0
    v_w, v_b = attn.v_proj.weight[rows], attn.v_proj.bias[rows]  # views of the head's value rows
    v_w[0], v_b[0] = 0.0, 1.0
    weights = torch.randn(n, HIDDEN, generator=gen) / HIDDEN**0.5
    if blind is not None:  # read nothing along these directions
        basis, _ = torch.linalg.qr(blind)
        weights -= weights @ basis @ basis.T
    v_w[1 : 1 + n] = weights
    v_b[1 : 1 + n] = 0.0
    cols = attn.o_proj.weight[:, rows]  # a view of the head's columns
    cols[:, 0] += strength * const
    cols[:, 1 : 1 + n] += strength * vary


def planted_model(tokenizer, *, strength: float = 1.0, seed: int = 0):
    """(HeadModel, info): the tiny Llama of this module's docstring, with P and G planted at `strength`."""
    strength = float(strength)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tf.LlamaForCausalLM(_config(len(tokenizer)))
    decoder = model.model
    ids = category_token_ids(tokenizer)
    with torch.no_grad():
        for name, p in model.named_parameters():  # random norms as in conftest; small biases
            if name.endswith("o_proj.bias"):
                p.zero_()
            elif name.endswith("bias"):
                p.normal_(0.0, 0.02, generator=gen)
            elif p.dim() == 1:
                p.normal_(1.0, 0.2, generator=gen)
        decoder.embed_tokens.weight.normal_(0.0, EMBED, generator=gen)  # a residual stream with content
        # 1. category directions in the unembedding
        basis, _ = torch.linalg.qr(torch.randn(HIDDEN, len(CATEGORIES), generator=gen))
        unembed = model.lm_head.weight
        for i, name in enumerate(CATEGORIES):
            unembed[list(ids[name])] += CLUSTER * basis[:, i]
        rows = {name: _unit(unembed[list(ids[name])].float()) for name in CATEGORIES}
        means = {name: r.mean(0) for name, r in rows.items()}

        def pick(name: str, n: int) -> torch.Tensor:
            order = torch.randperm(len(rows[name]), generator=gen)[:n]
            return rows[name][order]

        # 2. the concept head: colour directions only
        vary_p = VARY * pick(CONCEPT, N_VARY).T
        const_p = CONST_P * _unit(means[CONCEPT])
        _plant(decoder.layers[CONCEPT_HEAD[0]], CONCEPT_HEAD[1], const_p, vary_p, strength, gen)
        # 3. the generic head: every category's directions
        const_g = CONST_G * sum(_unit(means[name]) for name in CATEGORIES)
        vary_g = VARY * torch.cat([pick(name, 1) for name in CATEGORIES]).T
        blind = torch.cat([const_p[:, None], vary_p], 1)  # G's varying values do not read P's write
        _plant(decoder.layers[GENERIC_HEAD[0]], GENERIC_HEAD[1], const_g, vary_g, strength, gen, blind)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    info = {"concept": CONCEPT_HEAD, "generic": GENERIC_HEAD, "strength": strength}
    return hp.wrap(model, tokenizer, name=f"planted-{strength:g}-{seed}"), info
