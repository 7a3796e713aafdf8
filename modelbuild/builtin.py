"""The built-in models: trained here, offline, on the synthetic corpus of `modelbuild.corpus`.

Three Hugging Face checkpoints, saved with `save_pretrained` and then exported, verified and
registered by exactly the path a downloaded checkpoint takes (`export_models.export_checkpoint`):

- `builtin-marian-en-fr`: a small Marian pair model, English -> French (tier basic).
- `builtin-m2m-mini`: a small M2M100 model, English -> French/Spanish/German, target language
  forced as the first decoder token as NLLB/M2M100 do (tier medium).
- `builtin-m2m-to-en`: the same architecture the other way, French/Spanish/German -> English,
  the source language given by its `__xx__` token (tier medium).

Each recipe trains in its own process, one thread, seeded: the same code gives the same weights
whatever runs beside it. `build_checkpoints` trains the stale recipes in parallel processes and
hands each checkpoint back as soon as it is trained, so that its export overlaps the others'
training. A checkpoint is rebuilt only when its recipe digest (this file, the corpus generator,
the tokenizer builder, the recipe's fields) changes.

The recipes are sized to be cheap: a fresh build of all three takes about 3-4 minutes on two
cores, and each pair reaches >= 99 % exact match on held-out sentences
(`python -m modelbuild.evaluate`; docs/models.md has the figures).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import random
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from modelbuild import corpus as corpus_module
from modelbuild import tokenizer_files as tokenizers_module
from modelbuild.corpus import LANGUAGES, SAMPLE_SENTENCES, generate_corpus

SEED = 1234
MAX_POSITIONS = 128  # built-in sentences are short; the exported model refuses longer input
SORT_POOL = 16  # batches drawn at once and regrouped by length (see `_sorted_batches`)


@dataclass(frozen=True)
class Recipe:
    name: str
    family: str  # "marian" | "m2m100"
    tier: str
    pairs: tuple[tuple[str, str], ...]
    corpus_size: int
    vocab_size: int
    d_model: int
    layers: int
    heads: int
    ffn: int
    steps: int
    batch_size: int  # sentence pairs per batch (with sort_by_length, their worth of tokens)
    learning_rate: float
    # Length-sorted batches cost a third less (little padding) but need more steps: worth it for
    # the pre-LN M2M100 models; the post-LN Marian model learns in half the steps from uniform
    # batches and reads its source sooner with them, so it comes out even or ahead without.
    sort_by_length: bool


_M2M_MINI = Recipe(
    name="builtin-m2m-mini",
    family="m2m100",
    tier="medium",
    pairs=tuple(("en", tgt) for tgt in LANGUAGES if tgt != "en"),
    corpus_size=60_000,
    vocab_size=3000,
    d_model=96,
    layers=2,
    heads=4,
    ffn=384,
    steps=3000,
    batch_size=64,
    learning_rate=3e-3,
    sort_by_length=True,
)

RECIPES = (
    Recipe(
        name="builtin-marian-en-fr",
        family="marian",
        tier="basic",
        pairs=(("en", "fr"),),
        corpus_size=30_000,
        vocab_size=1000,
        d_model=128,
        layers=2,
        heads=4,
        ffn=512,
        steps=800,
        batch_size=64,
        learning_rate=2e-3,
        sort_by_length=False,
    ),
    _M2M_MINI,
    # The same shape and schedule the other way round: the source language is read from its token.
    replace(_M2M_MINI, name="builtin-m2m-to-en", pairs=tuple((src, "en") for src in LANGUAGES if src != "en")),
)


# Read when the code is imported, not when a checkpoint is stamped: a build that runs while the
# files are being edited must stamp its weights with the digest of the code that trained them.
_CODE_DIGEST = hashlib.sha256(
    b"".join(Path(module.__file__).read_bytes() for module in (corpus_module, tokenizers_module))
    + Path(__file__).read_bytes()
).digest()


def recipe_digest(recipe: Recipe) -> str:
    """Changes whenever anything that shapes the weights changes."""
    digest = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode())
    digest.update(_CODE_DIGEST)
    return digest.hexdigest()[:16]


def checkpoint_is_current(recipe: Recipe, build_dir: Path) -> bool:
    stamp = build_dir / recipe.name / "BUILD_DIGEST"
    return stamp.exists() and stamp.read_text().strip() == recipe_digest(recipe)


def build_checkpoints(
    recipes: list[Recipe], build_dir: Path, log: Callable[[str], None] = print, workers: int | None = None
) -> Iterator[tuple[Recipe, Path]]:
    """(recipe, checkpoint directory) for each recipe: cached ones first, then each as its training ends.

    Stale recipes train in spawned processes (no fork after torch has started threads), one
    thread each, the longest first when there are fewer workers than recipes. `log` goes to the
    training processes, so it must pickle (a module-level function); every line it gets starts
    with the recipe's name, so interleaved progress stays readable.
    """
    stale = []
    for recipe in recipes:
        if checkpoint_is_current(recipe, build_dir):
            log(f"{recipe.name}: trained checkpoint is up to date ({build_dir / recipe.name})")
            yield recipe, build_dir / recipe.name
        else:
            stale.append(recipe)
    if not stale:
        return
    # All at once by default, even with fewer cores: time-sharing makes them finish together,
    # while one process per core leaves a core idle as the last recipe trains alone.
    workers = max(1, min(len(stale), workers or len(stale)))
    log(f"training {', '.join(r.name for r in stale)} in {workers} process(es)")
    stale.sort(key=lambda r: r.steps * r.batch_size, reverse=True)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent)
    try:
        futures = {pool.submit(build_checkpoint, recipe, build_dir, log): recipe for recipe in stale}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        # A failed training or export stops the trainings not yet started; running ones finish
        # (their checkpoints are good and cached).
        pool.shutdown(cancel_futures=True)


def _die_with_parent() -> None:
    """A training process ends with the build that started it: a build killed by a timeout
    otherwise leaves its trainings burning the cores for minutes."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux


def build_checkpoint(recipe: Recipe, build_dir: Path, log=print) -> Path:
    """Train (or reuse) the recipe's checkpoint; returns the HF checkpoint directory."""
    checkpoint = build_dir / recipe.name
    stamp = checkpoint / "BUILD_DIGEST"
    digest = recipe_digest(recipe)
    if stamp.exists() and stamp.read_text().strip() == digest:
        log(f"{recipe.name}: trained checkpoint is up to date ({checkpoint})")
        return checkpoint

    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # tiny matrices: a second thread costs more in sync than it gains
    rng = random.Random(SEED)
    stamp.unlink(missing_ok=True)  # a build killed half-way must not look finished
    sentences = generate_corpus(recipe.corpus_size, seed=SEED)
    tokenizer, model = _make_model(recipe, sentences, checkpoint)
    examples = _examples(recipe, sentences, tokenizer, rng)
    log(f"{recipe.name}: training {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters "
        f"on {len(examples)} sentence pairs, {recipe.steps} steps of {recipe.batch_size}")
    _train(model, examples, recipe, rng, log)
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    stamp.write_text(digest + "\n")
    return checkpoint


def _make_model(recipe: Recipe, sentences: list[dict[str, str]], checkpoint: Path):
    from transformers import M2M100Config, M2M100ForConditionalGeneration, MarianConfig, MarianMTModel

    shape = dict(
        d_model=recipe.d_model,
        encoder_layers=recipe.layers,
        decoder_layers=recipe.layers,
        encoder_attention_heads=recipe.heads,
        decoder_attention_heads=recipe.heads,
        encoder_ffn_dim=recipe.ffn,
        decoder_ffn_dim=recipe.ffn,
        max_position_embeddings=MAX_POSITIONS,
        dropout=0.0,  # the corpus is unbounded and noise-free: nothing to regularize against
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    if recipe.family == "marian":
        (src, tgt), = recipe.pairs
        tokenizer = tokenizers_module.marian_tokenizer(
            checkpoint, [s[src] for s in sentences], [s[tgt] for s in sentences], recipe.vocab_size
        )
        pad = tokenizer.pad_token_id
        config = MarianConfig(
            vocab_size=len(tokenizer), pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
            # Embeddings scaled by sqrt(d_model), as opus-mt's are: unscaled, HF's 0.02-std token
            # embeddings drown under the sinusoidal positions and training stalls for hundreds of
            # steps before the model reads its source (or never does, with length-sorted batches).
            forced_eos_token_id=0, scale_embedding=True, **shape,
        )
        model = MarianMTModel(config)
        # HF does not save Marian's sinusoidal position tables; training them would make the
        # reloaded model quietly differ from the trained one.
        model.model.encoder.embed_positions.weight.requires_grad_(False)
        model.model.decoder.embed_positions.weight.requires_grad_(False)
        return tokenizer, model
    lines = [s[lang] for s in sentences for lang in sorted({lang for pair in recipe.pairs for lang in pair})]
    tokenizer = tokenizers_module.m2m100_tokenizer(checkpoint, lines, recipe.vocab_size)
    config = M2M100Config(
        vocab_size=tokenizers_module.m2m100_vocab_size(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id, scale_embedding=True,
        **shape,
    )
    return tokenizer, M2M100ForConditionalGeneration(config)



def _examples(recipe: Recipe, sentences, tokenizer, rng: random.Random) -> list[tuple[list[int], list[int]]]:
    """(source ids, label ids), framed exactly as the HF tokenizer frames them.

    The slow HF tokenizers cost ~0.2 ms a call, 10 s of CPU for 60k pairs; the sentencepiece
    models they wrap cost a thirtieth of that. So the framing (language tokens, </s>) is read
    from the tokenizer once per pair, the pieces come from sentencepiece, and the first
    `CHECKED_PER_PAIR` sentences of each pair must equal the tokenizer's own encoding.
    """
    source_ids, target_ids = _piece_encoders(recipe.family, tokenizer)
    framings = {}
    for pair in recipe.pairs:
        probe = next(s for s in sentences if s[pair[0]] and s[pair[1]])
        encoded = _hf_encode(recipe.family, tokenizer, pair, probe)
        framings[pair] = (_frame(encoded[0], source_ids(probe[pair[0]])), _frame(encoded[1], target_ids(probe[pair[1]])))
    examples, checked = [], dict.fromkeys(recipe.pairs, 0)
    for sentence in sentences:
        pair = rng.choice(recipe.pairs)
        (src_prefix, src_suffix), (tgt_prefix, tgt_suffix) = framings[pair]
        example = (
            [*src_prefix, *source_ids(sentence[pair[0]]), *src_suffix],
            [*tgt_prefix, *target_ids(sentence[pair[1]]), *tgt_suffix],
        )
        if checked[pair] < CHECKED_PER_PAIR:
            checked[pair] += 1
            if example != (expected := _hf_encode(recipe.family, tokenizer, pair, sentence)):
                raise RuntimeError(f"{recipe.name}: sentencepiece ids {example} differ from the HF tokenizer's "
                                   f"{expected} for {sentence}")
        examples.append(example)
    return examples


CHECKED_PER_PAIR = 500


def _piece_encoders(family: str, tokenizer):
    source, target = (tokenizer.spm_source, tokenizer.spm_target) if family == "marian" else (tokenizer.sp_model,) * 2
    vocab, unk = tokenizer.encoder, tokenizer.unk_token_id

    def encoder(model):
        return lambda text: [vocab.get(piece, unk) for piece in model.encode(text, out_type=str)]

    return encoder(source), encoder(target)


def _hf_encode(family: str, tokenizer, pair: tuple[str, str], sentence: dict[str, str]) -> tuple[list[int], list[int]]:
    src, tgt = pair
    if family == "m2m100":
        tokenizer.src_lang, tokenizer.tgt_lang = src, tgt
    encoded = tokenizer(sentence[src], text_target=sentence[tgt])
    return encoded["input_ids"], encoded["labels"]


def _frame(framed: list[int], bare: list[int]) -> tuple[list[int], list[int]]:
    """(prefix, suffix) around `bare` inside `framed`."""
    for start in range(len(framed) - len(bare) + 1):
        if framed[start : start + len(bare)] == bare:
            return framed[:start], framed[start + len(bare) :]
    raise RuntimeError(f"cannot find the sentencepiece ids {bare} inside the tokenizer's {framed}")


def _uniform_batches(examples, batch_size: int, rng: random.Random) -> Iterator[list[tuple[list[int], list[int]]]]:
    while True:
        yield rng.sample(examples, batch_size)


def _sorted_batches(examples, batch_size: int, rng: random.Random) -> Iterator[list[tuple[list[int], list[int]]]]:
    """Random batches of similar lengths, each about `batch_size` average pairs' worth of tokens.

    SORT_POOL batches' worth of pairs are drawn, sorted by length and cut where the padded size
    (rows x (longest source + longest target)) would pass the budget, and the batches shuffled:
    about 40 % less padding, so as much less compute, than uniform batches of `batch_size` rows.
    The budget is in tokens, not rows: with fixed rows, a token in a batch of short sentences
    weighs several times more in the mean loss than one in a batch of long sentences.
    """
    budget = batch_size * sum(len(src) + len(tgt) for src, tgt in examples) / len(examples)
    while True:
        pool = sorted(rng.sample(examples, batch_size * SORT_POOL), key=lambda e: (len(e[1]), len(e[0])))
        batches, batch, src_width, tgt_width = [], [], 0, 0
        for src, tgt in pool:
            widths = max(src_width, len(src)), max(tgt_width, len(tgt))
            if batch and (len(batch) + 1) * sum(widths) > budget:
                batches.append(batch)
                batch, widths = [], (len(src), len(tgt))
            batch.append((src, tgt))
            src_width, tgt_width = widths
        batches.append(batch)
        rng.shuffle(batches)
        yield from batches


def _train(model, examples, recipe: Recipe, rng: random.Random, log) -> None:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.01)
    warmup = max(1, recipe.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, (recipe.steps - step) / (recipe.steps - warmup))
    )
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=0.05)
    pad, start = model.config.pad_token_id, model.config.decoder_start_token_id
    report_every = max(1, recipe.steps // 8)
    batches = (_sorted_batches if recipe.sort_by_length else _uniform_batches)(examples, recipe.batch_size, rng)
    model.train()
    started = time.monotonic()
    for step in range(1, recipe.steps + 1):
        batch = next(batches)
        input_ids = _pad([src for src, _ in batch], pad)
        labels = _pad([tgt for _, tgt in batch], -100)
        # Decoder input = labels shifted right behind the start token; passing it (not `labels`)
        # keeps HF from computing a second, unsmoothed loss that nobody reads.
        decoder_ids = torch.cat([torch.full((len(batch), 1), start), labels[:, :-1]], dim=1)
        decoder_ids.masked_fill_(decoder_ids == -100, pad)
        logits = model(input_ids=input_ids, attention_mask=(input_ids != pad).long(), decoder_input_ids=decoder_ids).logits
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if step % report_every == 0 or step == recipe.steps:
            elapsed = time.monotonic() - started
            log(f"{recipe.name}: step {step}/{recipe.steps}  loss {loss.item():.3f}  {elapsed:.0f}s elapsed, "
                f"~{elapsed / step * (recipe.steps - step):.0f}s left")
    model.eval()


def _pad(rows: list[list[int]], value: int):
    import torch

    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def sample_texts(source: str) -> list[str]:
    return [s[source] for s in SAMPLE_SENTENCES]
