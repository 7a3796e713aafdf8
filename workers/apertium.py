"""The `apertium` engine family: rule-based translation through long-lived Apertium pipelines.

A registered Apertium mode (manifest family `apertium`, tier `fallback`; `export_models.py
--apertium`) is one language pair. `ApertiumModel` serves it behind the interface the runtime
uses for a seq2seq model (`fit`, `chunk`, `run`, `close`), so segmentation, the segment cache,
pivots and fail-over work for it exactly as for the neural models.

Each worker keeps one `Pipeline` per mode: the mode's programs (lt-proc, apertium-tagger, the
transfer stages, the generator) chained with pipes, each started once in null-flush mode (`-z`),
so a segment goes in and comes back without restarting the chain:

    worker ──stdin──▶ lt-proc -z │ apertium-tagger -z │ … │ lt-proc -z -g │ lt-proc -z -p ──stdout──▶ worker
    in:  text with slots "[N.i.k]", then the end marker "[N.i]", NUL
    out: the translation in stream format, the same slots and end marker, NUL

Wire contract (the text deformatter `apertium-destxt` drops NULs, so this module formats the
text itself), per exchange a random number N, per frame its index i:

- in: no character of Apertium's stream syntax reaches the chain. Each run of them (lttoolbox's
  escaped characters \\ [ ] { } ^ $ / @ < >, the deformatter's ~, the readers' marks * # = %,
  + and |) and of control, format, unassigned, private-use or surrogate characters (NUL ends a
  frame; ICU reads U+FFFF as the end of input) is replaced by the superblank `[N.i.k]` (its slot
  k) and put back on return. Escaping is not enough: lrx-proc swallows the NUL after an escaped
  `\\^` at a frame's end, and every later answer shifts by one. The end marker `[N.i]` also
  closes the last word, which the tokenizer otherwise holds back waiting for more input.
- out: `\\x` is the literal x; a superblank must be one of the frame's own slots or its end
  marker, which must come exactly once, last. Anything else is a *desync*: content cannot forge a
  marker (it never carries a `[`), so only a broken chain makes one. Unescaped `*`, `#`, `@` and
  `~` can only be the engine's (the text's own are in slots): an unknown word, a generation
  error, a word missing from the bilingual dictionary, a post-generation trigger; they are
  removed and the marks counted. Words dropped by transfer leave runs of spaces, collapsed.

A chain that dies (any stage) or desyncs is killed whole and started again: the answers read
before it stand, the segment where it happened is retried once, alone, on the fresh chain (so a
segment that breaks it again fails by itself), and the rest are sent again. Every answer of such
a run is marked uncacheable (`Chunk.cacheable`): the runtime keeps it out of the segment cache
and the message out of the message cache. Every frame comes back, so nothing waits on content;
the read timeout (restarted by any output) is only a liveness guard for a hung program.

The cache revision (`engine_revision`) covers `FRAMING_REVISION` and the mode file, data files
and programs as they are on disk at load, beside the manifest's checksums.

Confidence of a rule-based translation is the share of the source's words Apertium knew (not
marked), not a probability.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import select
import shlex
import shutil
import subprocess
import time
import unicodedata
import weakref
from dataclasses import dataclass
from pathlib import Path

import regex

from ipc.cache_key import segment_key
from workers.jobs import Chunk
from workers.manifest import ModelSpec
from workers.segmenter import Piece

ENGINE = "apertium"
# What `make system-deps` installs: the engine and the language data the appliance serves by default
# (the Makefile's APERTIUM_PACKAGES). Each pair after the first two joins en or es, so every
# language reaches the others through one pivot: pt, it, ca, gl <-> es; en <-> ca; ro -> es only
# (apertium-es-ro ships no es -> ro mode).
DEBIAN_PACKAGES = (
    "apertium", "apertium-eng-spa", "apertium-fr-es", "apertium-es-pt", "apertium-spa-ita",
    "apertium-spa-cat", "apertium-es-gl", "apertium-eng-cat", "apertium-es-ro",
)
# A liveness guard for a truly hung program only: every frame comes back (content cannot break
# the framing), so no answer is waited for because of what a segment says.
DEFAULT_TIMEOUT_S = 30.0
# Bumped whenever `encode`/`decode` change what reaches the pipeline or how an answer is read: it
# is part of every Apertium cache key (with the mode's data files), so entries written by older
# code are never served. 2: slots for every stream character, a nonce marker per frame.
FRAMING_REVISION = 2
# Apertium's stream syntax: lttoolbox's escaped characters (\\ [ ] { } ^ $ / @ < >), the text
# deformatter's space characters (~ triggers post-generation), the readers' word marks (* # @ = %),
# multiword joins (+) and alternatives (|). None reaches the pipeline: each run of them (with
# control, format, unassigned, private-use and surrogate characters, NUL and noncharacters such
# as U+FFFF, which ICU reads as the end of input) waits in a slot.
_SYNTAX = frozenset("\\[]^$/@<>{}~*#=%+|")
# Unescaped in an answer, these can only be the engine's: the text's own are in slots.
_MARKS = frozenset("*#@~")
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


class Desync(Exception):
    """An answer that is not the frame's own: its marker is missing, foreign or out of place."""


def literal(ch: str) -> bool:
    """Whether a character goes into the pipeline as itself; every other one waits in a slot."""
    if ch in _SYNTAX:
        return False
    if ch in "\t\n":
        return True
    return not unicodedata.category(ch).startswith(("C", "Zl", "Zp"))


def encode(text: str, tag: str) -> tuple[bytes, list[str]]:
    """One segment as the pipeline reads it (without the NUL that ends the frame), and its slots:
    each run of non-literal characters, replaced in the stream by the superblank `[tag.k]`."""
    out: list[str] = []
    slots: list[str] = []
    run: list[str] = []
    for ch in text:
        if literal(ch):
            if run:
                out.append(f"[{tag}.{len(slots)}]")
                slots.append("".join(run))
                run = []
            out.append(ch)
        else:
            run.append(ch)
    if run:
        out.append(f"[{tag}.{len(slots)}]")
        slots.append("".join(run))
    out.append(f"[{tag}]")
    return "".join(out).encode("utf-8"), slots


def decode(stream: str, tag: str, slots: list[str]) -> tuple[str, int]:
    """A frame's answer -> plain text and the number of engine marks removed. Raises Desync unless
    the answer carries its own end marker exactly once, last, and no superblank but its own."""
    out: list[str] = []
    marks = 0
    ended = False
    i, n = 0, len(stream)
    while i < n:
        ch = stream[i]
        if ended and not ch.isspace():
            raise Desync(f"output after the frame's end marker: {stream[i:i + 40]!r}")
        if ch == "\\" and i + 1 < n:
            out.append(stream[i + 1])
            i += 2
        elif ch == "[":
            end = stream.find("]", i + 1)
            if end < 0:
                raise Desync(f"an unclosed superblank: {stream[i:i + 40]!r}")
            content = stream[i + 1 : end]
            if content == tag:
                ended = True
            elif content.startswith(tag + ".") and content[len(tag) + 1 :].isdigit() \
                    and int(content[len(tag) + 1 :]) < len(slots):
                out.append(slots[int(content[len(tag) + 1 :])])
            else:
                raise Desync(f"a superblank that is not this frame's: [{content[:40]}]")
            i = end + 1
        elif ch in _MARKS:  # the text's own marks are in slots: an unescaped one is the engine's
            marks += ch != "~"
            i += 1
        else:
            out.append(ch)
            i += 1
    if not ended:
        raise Desync("the frame's end marker did not come back")
    return _SPACES.sub(" ", "".join(out)).strip(), marks


def known_share(source: str, marks: int) -> float:
    """The confidence of a rule-based translation: the share of the source's words not marked."""
    words = len(_WORD.findall(source))
    return 1.0 if words == 0 else max(0.0, (words - marks) / words)


# ------------------------------------------------------------------------------------ processes


@dataclass(frozen=True, slots=True)
class Run:
    """A pipeline's answers to one `run`: per text (translation, engine marks removed) or why it
    failed. `clean`: no chain died, stalled or desynced meanwhile, so the answers may be cached."""

    answers: list[tuple[str, int] | str]
    clean: bool


class Pipeline:
    """One mode's chain of programs, started once and kept; restarted when it dies, stalls or
    answers a frame with anything but that frame's own marker."""

    def __init__(self, stages: list[list[str]], timeout_s: float = DEFAULT_TIMEOUT_S, name: str = "") -> None:
        self.stages = stages
        self.timeout_s = timeout_s
        self.name = name or Path(stages[0][0]).name
        self.starts = 0  # chains started; more than one means a restart
        self.desyncs = 0  # exchanges that ended on an answer that was not its frame's own
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

    def run(self, texts: list[str]) -> Run:
        """Translate every text; each answer is (text, engine marks removed), or a str saying why
        that text failed. Never raises for a dying or desynced chain."""
        answers: list[tuple[str, int] | str | None] = [None] * len(texts)
        clean = True
        pending = list(range(len(texts)))
        while pending:
            done, lost, unsent, why = self._exchange(pending, texts)
            clean &= not why
            for i, answer in done.items():
                answers[i] = answer
            for i in lost:  # alone on a fresh chain: a segment that breaks it again fails by itself
                again, _, _, why_again = self._exchange([i], texts)
                clean &= not why_again
                answers[i] = again.get(i, f"{why}; retried on a fresh pipeline: {why_again}")
            for i in set(pending) - done.keys() - set(lost) - set(unsent):
                answers[i] = why  # the chain could not start
            pending = unsent
        return Run(answers, clean)  # type: ignore[arg-type]

    def _exchange(
        self, items: list[int], texts: list[str]
    ) -> tuple[dict[int, tuple[str, int]], list[int], list[int], str]:
        """Write the items' frames and read their answers, pipelined. Returns (answers, items lost
        in flight when the chain died or desynced, items never written or after a desync, why)."""
        if not self.alive():
            try:
                self.start()
            except ApertiumError as exc:
                return {}, [], [], str(exc)  # nothing was written: `run` gives up on them below
        stdin, stdout = self._procs[0].stdin.fileno(), self._procs[-1].stdout.fileno()
        nonce = str(secrets.randbits(63))  # digits: no stage rewrites them (case, escapes)
        tags = [f"{nonce}.{i}" for i in items]
        framed = [encode(texts[i], tag) for i, tag in zip(items, tags)]
        data = b"".join(payload + b"\0" for payload, _ in framed)
        ends = []  # byte offset where each item's frame ends
        for payload, _ in framed:
            ends.append((ends[-1] if ends else 0) + len(payload) + 1)
        written, received, buffer = 0, 0, bytearray()
        done: dict[int, tuple[str, int]] = {}
        poller = select.poll()
        poller.register(stdout, select.POLLIN)
        poller.register(stdin, select.POLLOUT)
        deadline = time.monotonic() + self.timeout_s
        why = ""
        desynced = -1  # the position of the first answer that was not its frame's own
        while received < len(items):
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"no output for {self.timeout_s:g}s"
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
                    deadline = time.monotonic() + self.timeout_s  # progress: the guard starts again
                    buffer += chunk
                    while (end := buffer.find(b"\0")) >= 0 and received < len(items):
                        answer = bytes(buffer[:end]).decode("utf-8", "replace")
                        del buffer[: end + 1]
                        try:
                            done[items[received]] = decode(answer, tags[received], framed[received][1])
                        except Desync as exc:
                            why, desynced = f"answer {received} of {len(items)} is not its frame's own: {exc}", received
                            break
                        received += 1
                    if why:
                        break
            if why:
                break
        if received == len(items) and not buffer:
            return done, [], [], ""
        if not why:
            why = "it answered more than it was asked"
        self.desyncs += desynced >= 0
        why = f"the {self.name} pipeline {'desynced' if desynced >= 0 else 'died'} ({why}{self._exit_codes()})"
        self.close()
        if desynced >= 0:  # the answers before it were each their own; it is charged, the rest go again
            rest = [i for i in items[desynced:] if i not in done]
            return done, rest[:1], rest[1:], why
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
        self.revision = engine_revision(spec.revision, mode_file, stages)
        self.pipeline = Pipeline(stages, timeout_s, spec.mode)

    def fit(self, text: str, source: str, target: str) -> list[Piece]:
        return [Piece(text, True)]  # no input limit: a segment goes whole

    def chunk(self, text: str, source: str, target: str, beam: int, limits: object = None) -> Chunk:
        # `encode` is a function of the text alone (the nonce is added per exchange): the text's
        # own bytes key it, under the revision that covers the framing code and the mode's data.
        ids = list(text.encode("utf-8", "surrogatepass"))
        key = segment_key(self.spec.name, self.revision, source, target, ids, {"engine": ENGINE})
        return Chunk(ids, key, source=text)

    def run(self, source: str, target: str, beam: int, chunks: list[Chunk], limits: object = None) -> None:
        outcome = self.pipeline.run([c.source for c in chunks])
        for chunk, answer in zip(chunks, outcome.answers):
            chunk.cacheable = outcome.clean
            if isinstance(answer, str):
                chunk.failure = f"model {self.spec.name!r} failed: {answer}"
                continue
            chunk.text, chunk.unknown = answer
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


def engine_revision(files_revision: str, mode_file: Path, stages: list[list[str]]) -> str:
    """What an Apertium translation depends on besides its text, taken once at load: the framing
    code, the manifest's checksums, and the mode file, data files and programs as they are on
    disk now (path, size, mtime), so an upgraded package or a change of framing starts fresh
    cache entries instead of serving ones written before."""
    material = [str(FRAMING_REVISION), files_revision]
    programs = [shutil.which(stage[0]) or stage[0] for stage in stages]
    for path in [mode_file, *data_files(stages), *map(Path, programs)]:
        try:
            st = path.stat()
            material.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            material.append(f"{path}:absent")
    return hashlib.sha256("\n".join(material).encode()).hexdigest()[:16]
