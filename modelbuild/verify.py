"""Verification of an export against its PyTorch reference, run by the runtime the appliance serves.

The runtime's token ids must equal the Hugging Face tokenizer's, its greedy output must equal
PyTorch's token for token (fp32), and every sample must translate the same alone and in one
batch with the others; an int8 export records its agreement and chrF against PyTorch, and fails
under the minimum chrF it is given."""

from __future__ import annotations

from pathlib import Path

from modelbuild.checkpoint import set_source_language
from modelbuild.report import ExportError
from workers.manifest import Framing, spec_from_entry

FALLBACK_SAMPLES = {
    "en": ["Hello, how are you?", "The meeting starts at nine tomorrow morning.", "Thank you very much!"],
    "fr": ["Bonjour, comment allez-vous ?", "La réunion commence demain à neuf heures.", "Merci beaucoup !"],
    "es": ["Hola, ¿cómo estás?", "La reunión empieza mañana a las nueve.", "¡Muchas gracias!"],
    "de": ["Hallo, wie geht es dir?", "Das Treffen beginnt morgen um neun Uhr.", "Vielen Dank!"],
    # The languages of Debian's other Apertium pairs (apertium-es-pt, -spa-ita, -spa-cat, -es-gl, -es-ro):
    # each registered mode is verified on a sentence in its own source language.
    "pt": ["Olá, como estás?", "A reunião começa amanhã às nove horas.", "Muito obrigado!"],
    "it": ["Ciao, come stai?", "La riunione comincia domani alle nove.", "Grazie mille!"],
    "ca": ["Hola, com estàs?", "La reunió comença demà a les nou.", "Moltes gràcies!"],
    "gl": ["Ola, como estás?", "A reunión comeza mañá ás nove.", "Moitas grazas!"],
    "ro": ["Bună ziua, ce mai faci?", "Întâlnirea începe mâine la ora nouă.", "Mulțumesc foarte mult!"],
}


def torch_greedy(model, tokenizer, family: str, framing: Framing, ids: list[int], tgt: str, budget: int) -> list[int]:
    import torch
    from transformers import GenerationConfig

    prefix = framing.decoder_prefix(tgt)
    # Marian checkpoints force </s> at the length limit; the runtime stops there without it, so
    # the reference must not force it either (the model default would otherwise override None).
    model.generation_config.forced_eos_token_id = None
    config = GenerationConfig(
        decoder_start_token_id=framing.decoder_start_id,
        eos_token_id=framing.eos_id,
        pad_token_id=framing.pad_id,
        forced_bos_token_id=prefix[1] if len(prefix) > 1 else None,
        bad_words_ids=[[framing.pad_id]] if framing.pad_id != framing.eos_id else None,
        num_beams=1,
        do_sample=False,
        max_new_tokens=budget + len(prefix) - 1,
    )
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=config)[0].tolist()
    tokens = out[len(prefix) :]
    if framing.eos_id in tokens:
        tokens = tokens[: tokens.index(framing.eos_id) + 1]
    return tokens


def verify(models_dir: Path, name: str, entry: dict, reference, samples: dict[str, list[str]], min_chrf: float) -> dict:
    """Compare the exported model, run by the runtime, with PyTorch on every pair's samples, and
    check that each sample translates the same alone and in one batch with the others."""
    from workers.runtime import Model

    config, tokenizer, model, family, _ = reference
    spec = spec_from_entry(name, models_dir, entry)
    runtime_model = Model(spec)
    framing = spec.framing
    compared = agreeing = 0
    engine_texts, torch_texts = [], []
    for src, tgt in spec.pairs:
        texts = samples.get(src, FALLBACK_SAMPLES.get(src, FALLBACK_SAMPLES["en"]))
        sources, budgets, alone = [], [], []
        for text in texts:
            ids = runtime_model.source_ids(text, src, tgt)
            set_source_language(family, tokenizer, src)
            hf_ids = tokenizer(framing.text_prefix(src, tgt) + text)["input_ids"]
            if ids != hf_ids:
                raise ExportError(f"{name}: runtime tokenizer disagrees with {type(tokenizer).__name__} on {text!r}: "
                                  f"{ids} != {hf_ids}")
            budget = min(spec.max_target_tokens, 2 * len(ids) + 10)
            expected = torch_greedy(model, tokenizer, family, framing, ids, tgt, budget)
            got = runtime_model.generate([ids], tgt, max_new_tokens=[budget])[0].tokens
            sources.append(ids)
            budgets.append(budget)
            alone.append(got)
            expected_text = tokenizer.decode(expected, skip_special_tokens=True).strip()
            got_text = runtime_model.detokenize(got)
            compared += 1
            agreeing += got == expected
            engine_texts.append(got_text)
            torch_texts.append(expected_text)
            if spec.quantization == "fp32" and got != expected:
                raise ExportError(
                    f"{name}: ONNX greedy output differs from PyTorch for {src}->{tgt} {text!r}:\n"
                    f"  onnx:    {got} {got_text!r}\n  pytorch: {expected} {expected_text!r}"
                )
            if got == expected and got_text != expected_text:
                raise ExportError(f"{name}: runtime detokenizer gives {got_text!r}, HF gives {expected_text!r}")
        batched = [hyp.tokens for hyp in runtime_model.generate(sources, tgt, max_new_tokens=budgets)]
        differ = [text for text, one, many in zip(texts, alone, batched) if one != many]
        if differ:
            raise ExportError(
                f"{name}: {len(differ)} of {len(texts)} {src}->{tgt} samples translate differently alone and in one "
                f"batch (first: {differ[0]!r}): a sentence's translation must not depend on its batch mates"
            )
    import sacrebleu

    chrf = sacrebleu.corpus_chrf(engine_texts, [torch_texts]).score
    report = {"sentences": compared, "exact_match": round(agreeing / compared, 4), "chrf_vs_pytorch": round(chrf, 2),
              "alone_equals_batched": compared}
    if spec.quantization != "fp32" and chrf < min_chrf:
        raise ExportError(f"{name}: int8 output agrees too little with PyTorch (chrF {chrf:.1f} < {min_chrf}); "
                          "export without --quantize or check the quantized graphs")
    return report
