"""The output projection: a decoder's last hidden state onto the vocabulary, or onto a shortlist.

The export splits the projection out of the decoder graphs into two head graphs
(modelbuild.graphs.split_output_projection): `head_model.onnx` gives the logits (greedy search picks
the best in numpy, which measured faster than ORT's ArgMax over 58k columns) and
`head_topk_model.onnx` the k best log-probabilities and their ids per row (beam search).

A shortlist (as CTranslate2's vocabulary mapping) projects onto the ids a target language uses
only: the pieces the target tokenizer produces on text of that language, plus the special and
language tokens. The head graphs are rebuilt in memory with their weight columns, column scales
and bias sliced to those ids; with one int8 scale per column, a sliced weight is exactly the
quantization of the sliced fp32 weight, so each kept logit is unchanged. Log-probabilities are
normalised over the shortlist. It is off unless `[workers] vocabulary_shortlist` turns it on:
a token outside the shortlist can never be chosen.

Every operation is per row, so a row's output does not depend on its batch mates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

HEAD_GRAPH = "head_model.onnx"
TOPK_GRAPH = "head_topk_model.onnx"
SHORTLISTS_FILE = "shortlists.json"  # target language -> sorted vocabulary ids, written at export


def build_shortlist(encode_target, texts: list[str], always: set[int]) -> list[int]:
    """The ids the target tokenizer produces on `texts` (text of one target language), and `always`
    (end of sequence, unknown, padding, language tokens)."""
    return sorted({i for text in texts for i in encode_target(text)} | always)


class OutputHead:
    def __init__(self, logits: ort.InferenceSession, topk: ort.InferenceSession, ids: np.ndarray | None = None):
        self._logits, self._topk = logits, topk
        self.ids = ids  # sorted vocabulary ids of the columns; None: the whole vocabulary

    @classmethod
    def per_language(cls, directory: Path, shortlists: dict[str, list[int]],
                     options: ort.SessionOptions) -> dict[str, "OutputHead"]:
        """For each target language, the head of the export in `directory` over its shortlist.
        Built at load, each head graph read once: NLLB's projection is 262 MB of int8."""
        graphs = [_VocabularyColumns(directory / graph) for graph in (HEAD_GRAPH, TOPK_GRAPH)]
        heads = {}
        for lang, ids in shortlists.items():
            keep = np.unique(np.asarray(ids, dtype=np.int64))
            heads[lang] = cls(*(graph.session(keep, options) for graph in graphs), keep)
        return heads

    def logits(self, hidden: np.ndarray, options: ort.RunOptions | None = None) -> np.ndarray:
        """[rows, columns]: one column per vocabulary id (or per shortlisted id, in `ids` order)."""
        return self._logits.run(["logits"], {"hidden": hidden}, options)[0]

    def logits_into(self, hidden: np.ndarray, buffer: "Buffer") -> np.ndarray:
        """`logits`, written by ONNX Runtime straight into `buffer` (a decode's own, reused at
        every step): a greedy step's logits are rows x 58,101 floats, and a fresh array per step
        costs page faults, or heap that stays mapped after the decode."""
        binding = self._logits.io_binding()
        binding.bind_cpu_input("hidden", np.ascontiguousarray(hidden))
        out = buffer.view((hidden.shape[0], self.width))
        binding.bind_output("logits", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self._logits.run_with_iobinding(binding)
        return out

    @property
    def width(self) -> int:
        """Columns of the logits: the vocabulary, or the shortlist."""
        return len(self.ids) if self.ids is not None else int(self._logits.get_outputs()[0].shape[-1])

    def topk(self, hidden: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the k best log-probabilities, best first, and their vocabulary ids."""
        values, columns = self._topk.run(["values", "ids"], {"hidden": hidden, "k": np.array([k], np.int64)})
        return values, self.vocabulary_ids(columns)

    def vocabulary_ids(self, columns: np.ndarray) -> np.ndarray:
        return columns if self.ids is None else self.ids[columns]

    def columns(self, vocabulary_ids: list[int]) -> list[int]:
        """The columns of those ids that this head has (a shortlist may lack some)."""
        if self.ids is None:
            return list(vocabulary_ids)
        at = np.searchsorted(self.ids, vocabulary_ids)
        return [int(c) for c, v in zip(at, vocabulary_ids) if c < len(self.ids) and self.ids[c] == v]


class Buffer:
    """A flat float32 array handed out as C-contiguous views of its start, grown by half when too
    small (its old contents are dead by then): one allocation serves every shape of a decode."""

    def __init__(self):
        self._flat = np.empty(0, np.float32)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        if self._flat.size < size:
            self._flat = np.empty(max(size, self._flat.size * 3 // 2), np.float32)
        return self._flat[:size].reshape(shape)


class _VocabularyColumns:
    """A head graph, its vocabulary-sized tensors ([d, vocab] weight, its [vocab] scales, the
    bias) held apart, so that a session over any subset of the columns is cheap to make."""

    def __init__(self, path: Path):
        import onnx
        from onnx import numpy_helper

        self.model = onnx.load(str(path))  # with its weights
        inits = self.model.graph.initializer
        vocab = next(i.dims[-1] for i in inits if i.name.startswith("output_projection.weight"))
        self.columns = {i.name: numpy_helper.to_array(i) for i in inits if i.dims and i.dims[-1] == vocab}
        kept = [i for i in inits if i.name not in self.columns]
        del inits[:]
        inits.extend(kept)

    def session(self, keep: np.ndarray, options: ort.SessionOptions) -> ort.InferenceSession:
        from onnx import numpy_helper

        model = type(self.model)()
        model.CopyFrom(self.model)  # the graph without its vocabulary-sized tensors: kilobytes
        model.graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(values[..., keep]), name)
                                       for name, values in self.columns.items())
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
