"""The `apertium` engine family: rule-based translation through long-lived Apertium pipelines.

A registered Apertium mode (manifest family `apertium`, tier `fallback`; `export_models.py
--apertium`) is one language pair. `ApertiumModel` serves it behind the interface the runtime
uses for a seq2seq model (`fit`, `chunk`, `run`, `close`), so segmentation, the segment cache,
pivots and fail-over work for it exactly as for the neural models.

Each worker keeps one `Pipeline` per mode: the mode's programs (lt-proc, apertium-tagger, the
transfer stages, the generator) chained with pipes, each started once in null-flush mode (`-z`),
so a segment goes in and comes back without restarting the chain:

    worker ──stdin──▶ lt-proc -z │ apertium-tagger -z │ … │ lt-proc -z -g │ lt-proc -z -p ──stdout──▶ worker
    in:  escape(segment) "[]" NUL                 out: the translation in stream format, NUL

Wire contract (Apertium's stream format; the text deformatter `apertium-destxt` drops NULs, so
this module formats the text itself):

- in: the reserved characters \\ [ ] ^ $ / @ < > { } get a backslash; a `~` becomes the
  superblank `[~]` (bare, it would trigger post-generation rules); NUL is dropped (it is the
  frame end). The empty superblank `[]` closes the last word, which the tokenizer otherwise holds
  back waiting for more input.
- out: `\\x` is the literal x, `[...]` a superblank whose content is literal; `*word`, `#word`
  and `@word` at the start of a word are an unknown word, a generation error and a word missing
  from the bilingual dictionary: the mark is removed and counted. Words dropped by transfer leave
  runs of spaces, which are collapsed. Every answer carries the frame's closing `[]` back: an
  answer without it is the empty frame a stage flushes when its input ends, i.e. a dying chain.
  A literal `*` or `#` right before a letter would read as a mark; the segmenter keeps markdown
  emphasis and hashtags out of segments, so in practice only the engine's marks are there.

The pipeline is read with a timeout that restarts whenever output arrives. A chain that dies
(any stage), or stops answering within the timeout, is killed whole and started again; the
segments that were in flight are retried once each, alone, on the fresh chain, so a segment that
kills the chain again fails by itself and the others are not charged for it.

Confidence of a rule-based translation is the share of the source's words Apertium knew (not
marked), not a probability.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import time
import weakref
from pathlib import Path

import regex

from ipc.cache_key import segment_key
from workers.jobs import Chunk
from workers.manifest import ModelSpec
from workers.segmenter import Piece

ENGINE = "apertium"
# What `make system-deps` installs: the engine and the language data the appliance serves by default.
DEBIAN_PACKAGES = ("apertium", "apertium-eng-spa", "apertium-fr-es")
DEFAULT_TIMEOUT_S = 10.0
_RESERVED = frozenset("\\[]^$/@<>{}")
# Ends every frame. A superblank always comes back, and the text's own brackets are escaped, so an
# answer without it is not a translation: it is the empty frame a stage flushes when its input ends.
_END = b"[]"
_MARKS = "*#@"
_SHELL = regex.compile(r"[<>;&`]|\$\(|\$[^12]")  # redirections, sequencing, substitutions: not a plain pipeline
_SPACES = regex.compile(r" {2,}")
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]*\p{L}[\p{L}\p{M}\p{N}]*")
_READ_SIZE = 1 << 16


class ApertiumError(Exception):
    """Apertium is missing, a mode is broken, or a pipeline cannot start."""


def install_hint(packages: tuple[str, ...] | list[str] = DEBIAN_PACKAGES) -> str:
    names = " ".join(dict.fromkeys(["apertium", *packages]))
    return f"install the Debian packages: apt-get install {names} (as root, `make system-deps` does it)"


def data_dir() -> Path:
    """Where Apertium keeps its language data; `APERTIUM_DATADIR` as the `apertium` script reads it."""
    return Path(os.environ.get("APERTIUM_DATADIR") or "/usr/share/apertium")


def installed_modes(modes_dir: Path | None = None) -> dict[str, Path]:
    """Mode name (`eng-spa`) -> its mode file, for every mode installed."""
    directory = modes_dir or data_dir() / "modes"
    if not directory.is_dir():
        return {}
    return {path.stem: path for path in sorted(directory.glob("*.mode")) if path.is_file()}


def mode_languages(mode: str) -> tuple[str, str] | None:
    """The two language codes of a plain translation mode (`eng-spa` -> eng, spa); None for the
    variants (`eco-fr-es`, `spa-eng_US`), debugging modes and anything else."""
    parts = mode.split("-")
    if len(parts) != 2 or not all(regex.fullmatch(r"[a-z]{2,3}", part) for part in parts):
        return None
    return parts[0], parts[1]


def read_stages(mode_file: Path) -> list[list[str]]:
    """The mode's programs as argument lists, each in null-flush mode (`-z`), with unknown-word
    marks on (`$1` is the generator's option: `-g`; `$2`, the tagger's, is left empty)."""
    text = mode_file.read_text(encoding="utf-8").strip()
    if not text:
        raise ApertiumError(f"the Apertium mode file {mode_file} is empty")
    lexer = shlex.shlex(text, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    stages: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":
            stages.append([])
        elif _SHELL.search(token) or token.startswith("$") and token not in ("$1", "$2"):
            raise ApertiumError(f"{mode_file}: {token!r} is not part of a plain pipeline of programs")
        elif token == "$1":
            stages[-1].append("-g")
        elif token != "$2":
            stages[-1].append(token)
    if any(not stage for stage in stages) or "||" in text:
        raise ApertiumError(f"{mode_file}: an empty stage in the pipeline")
    return [[stage[0], "-z", *stage[1:]] if "-z" not in stage else stage for stage in stages]


def data_files(stages: list[list[str]]) -> list[Path]:
    """The files the stages read: their absolute path arguments."""
    return [Path(arg) for stage in stages for arg in stage[1:] if arg.startswith("/")]


def mode_packages(stages: list[list[str]]) -> list[str]:
    """The Debian packages a mode needs: apertium, and the data packages its files live in
    (Debian names each after its folder under /usr/share/apertium)."""
    names = [path.parent.name for path in data_files(stages) if path.parent.name.startswith("apertium-")]
    return list(dict.fromkeys(["apertium", *names]))


def check_installed(stages: list[list[str]], packages: tuple[str, ...] | list[str] = ()) -> None:
    """Raise ApertiumError, naming the packages to install, unless every program and data file is there."""
    wanted = list(packages) or mode_packages(stages)
    missing = sorted({stage[0] for stage in stages if shutil.which(stage[0]) is None})
    if missing:
        raise ApertiumError(f"Apertium programs {', '.join(missing)} are not installed: {install_hint(wanted)}")
    absent = [str(path) for path in data_files(stages) if not path.is_file()]
    if absent:
        raise ApertiumError(f"Apertium language data {', '.join(absent[:3])} is missing: {install_hint(wanted)}")


# ------------------------------------------------------------------------------------ the text


def frame(text: str) -> bytes:
    """One segment as the pipeline reads it, without the NUL that ends the frame."""
    out = []
    for ch in text:
        if ch in _RESERVED:
            out.append("\\" + ch)
        elif ch == "~":
            out.append("[~]")
        elif ch != "\0":
            out.append(ch)
    return "".join(out).encode("utf-8") + _END


def unformat(stream: str) -> tuple[str, int]:
    """A translation in stream format -> plain text and the number of marked words."""
    out: list[str] = []
    marks = 0
    i, n = 0, len(stream)
    while i < n:
        ch = stream[i]
        if ch == "\\" and i + 1 < n:
            out.append(stream[i + 1])
            i += 2
        elif ch == "[":
            i = _superblank(stream, i + 1, out)
        elif ch in _MARKS and i + 1 < n and stream[i + 1].isalpha() and not (out and out[-1][-1:].isalnum()):
            marks += 1
            i += 1
        else:
            out.append(ch)
            i += 1
    return _SPACES.sub(" ", "".join(out)).strip(), marks


def _superblank(stream: str, i: int, out: list[str]) -> int:
    """Copy a superblank's content (escapes resolved) from `i`; returns the index after its `]`."""
    n = len(stream)
    while i < n and stream[i] != "]":
        if stream[i] == "\\" and i + 1 < n:
            i += 1
        out.append(stream[i])
        i += 1
    return i + 1


def known_share(source: str, marks: int) -> float:
    """The confidence of a rule-based translation: the share of the source's words not marked."""
    words = len(_WORD.findall(source))
    return 1.0 if words == 0 else max(0.0, (words - marks) / words)


# ------------------------------------------------------------------------------------ processes


class Pipeline:
    """One mode's chain of programs, started once and kept; restarted when it dies or stalls."""

    def __init__(self, stages: list[list[str]], timeout_s: float = DEFAULT_TIMEOUT_S, name: str = "") -> None:
        self.stages = stages
        self.timeout_s = timeout_s
        self.name = name or Path(stages[0][0]).name
        self.starts = 0  # chains started; more than one means a restart
        self._procs: list[subprocess.Popen] = []
        self._finalizer: weakref.finalize | None = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def start(self) -> None:
        self.close()
        env = {**os.environ, "LC_ALL": "C.UTF-8"}  # the tools read and write UTF-8 whatever the host locale
        procs: list[subprocess.Popen] = []
        try:
            for i, argv in enumerate(self.stages):
                procs.append(subprocess.Popen(
                    argv, stdin=procs[-1].stdout if procs else subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, env=env,
                ))
                if i:
                    procs[-2].stdout.close()  # the next stage holds it now: a dead stage means EOF downstream
        except OSError as exc:
            _kill(procs)
            raise ApertiumError(f"cannot start the {self.name} pipeline ({' '.join(argv)}): {exc}") from exc
        os.set_blocking(procs[0].stdin.fileno(), False)
        os.set_blocking(procs[-1].stdout.fileno(), False)
        self._procs = procs
        self.starts += 1
        self._finalizer = weakref.finalize(self, _kill, procs)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._procs = []

    def run(self, payloads: list[bytes]) -> list[bytes | str]:
        """Translate every payload (a frame without its NUL); each answer is the output bytes, or
        a str saying why that payload failed. Never raises for a dying chain."""
        answers: list[bytes | str | None] = [None] * len(payloads)
        pending = list(range(len(payloads)))
        while pending:
            done, in_flight, unsent, why = self._exchange(pending, payloads)
            for i, out in done.items():
                answers[i] = out
            for i in in_flight:  # alone on a fresh chain: a segment that kills it again fails by itself
                again, _, _, why_again = self._exchange([i], payloads)
                answers[i] = again.get(i, f"{why}; retried on a fresh pipeline: {why_again}")
            for i in set(pending) - done.keys() - set(in_flight) - set(unsent):
                answers[i] = why  # the chain could not start
            pending = unsent
        return answers  # type: ignore[return-value]

    def _exchange(
        self, items: list[int], payloads: list[bytes]
    ) -> tuple[dict[int, bytes], list[int], list[int], str]:
        """Write the items' frames and read their answers, pipelined. Returns (answers, items lost
        in flight when the chain died, items never written, why it died)."""
        if not self.alive():
            try:
                self.start()
            except ApertiumError as exc:
                return {}, [], [], str(exc)  # nothing was written: `run` gives up on them below
        stdin, stdout = self._procs[0].stdin.fileno(), self._procs[-1].stdout.fileno()
        data = b"".join(payloads[i] + b"\0" for i in items)
        ends = []  # byte offset where each item's frame ends
        for i in items:
            ends.append((ends[-1] if ends else 0) + len(payloads[i]) + 1)
        written, received, buffer = 0, 0, bytearray()
        done: dict[int, bytes] = {}
        poller = select.poll()
        poller.register(stdout, select.POLLIN)
        poller.register(stdin, select.POLLOUT)
        deadline = time.monotonic() + self.timeout_s
        why = ""
        while received < len(items):
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"no answer within {self.timeout_s:g}s"
                break
            events = poller.poll(left * 1000)
            for fd, event in events:
                if fd == stdin:
                    if event & (select.POLLERR | select.POLLHUP):
                        why = "its first program exited"
                        break
                    try:
                        written += os.write(stdin, data[written : written + _READ_SIZE])
                    except (BrokenPipeError, ConnectionResetError):
                        why = "its first program exited"
                        break
                    except BlockingIOError:
                        continue
                    if written >= len(data):
                        poller.unregister(stdin)
                else:
                    try:
                        chunk = os.read(stdout, _READ_SIZE)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        why = "its last program closed its output"
                        break
                    deadline = time.monotonic() + self.timeout_s  # progress: the timeout starts again
                    buffer += chunk
                    while (end := buffer.find(b"\0")) >= 0 and received < len(items):
                        answer = bytes(buffer[:end])
                        if _END not in answer:  # a stage that reaches EOF flushes an empty frame: dying
                            why = "a stage exited"
                            break
                        done[items[received]] = answer
                        del buffer[: end + 1]
                        received += 1
                    if why:
                        break
            if why:
                break
        if received == len(items) and not buffer:
            return done, [], [], ""
        if not why:
            why = "it answered more than it was asked"
        why = f"the {self.name} pipeline died ({why}{self._exit_codes()})"
        self.close()
        lost = [i for k, i in enumerate(items) if i not in done and (ends[k - 1] if k else 0) < written]
        unsent = [i for k, i in enumerate(items) if i not in done and (ends[k - 1] if k else 0) >= written]
        if not lost and unsent:  # died before a byte of them went in: the first is charged, or this never ends
            lost, unsent = unsent[:1], unsent[1:]
        return done, lost, unsent, why

    def _exit_codes(self) -> str:
        exited = [f"{Path(p.args[0]).name} exited {p.returncode}" for p in self._procs if p.poll() is not None]
        return f"; {', '.join(exited)}" if exited else ""


def _kill(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


# ------------------------------------------------------------------------------------ the engine


class ApertiumModel:
    """One registered mode as the runtime sees a model. The pipeline starts on first use."""

    engine = ENGINE

    def __init__(self, spec: ModelSpec, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.spec = spec
        mode_file = spec.directory / f"{spec.mode}.mode"
        if not mode_file.is_file():
            raise ApertiumError(f"the Apertium mode {spec.mode!r} is not installed ({mode_file} is missing): "
                                f"{install_hint(spec.packages)}, or drop {spec.name!r} from the manifest")
        stages = read_stages(mode_file)
        check_installed(stages, spec.packages)
        self.pipeline = Pipeline(stages, timeout_s, spec.mode)

    def fit(self, text: str, source: str, target: str) -> list[Piece]:
        return [Piece(text, True)]  # no input limit: a segment goes whole

    def chunk(self, text: str, source: str, target: str, beam: int, limits: object = None) -> Chunk:
        payload = frame(text)
        spec = self.spec
        key = segment_key(spec.name, spec.revision, source, target, payload, {"engine": ENGINE})
        return Chunk(list(payload), key, source=text)

    def run(self, source: str, target: str, beam: int, chunks: list[Chunk], limits: object = None) -> None:
        answers = self.pipeline.run([bytes(c.ids) for c in chunks])
        for chunk, answer in zip(chunks, answers):
            if isinstance(answer, str):
                chunk.failure = f"model {self.spec.name!r} failed: {answer}"
                continue
            chunk.text, chunk.unknown = unformat(answer.decode("utf-8", "replace"))
            chunk.confidence = round(known_share(chunk.source, chunk.unknown), 4)

    def translate(self, texts: list[str]) -> list[str]:
        """Plain texts through the pipeline (tools and benchmarks); raises on a failed text."""
        chunks = [self.chunk(t, "", "", 1) for t in texts]
        self.run("", "", 1, chunks)
        failed = next((c.failure for c in chunks if c.failure), "")
        if failed:
            raise ApertiumError(failed)
        return [c.text for c in chunks]

    def close(self) -> None:
        self.pipeline.close()
