"""Record and replay real model answers, so CI can gate on them with no key and no network.

Recordings live in JSON fixtures, one file per provider and model under
``cases/recordings/``, keyed by a hash of the canonical request. A changed prompt
is a changed request: it shows up as a missing recording, never as a silent replay.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from workshop.files import replace_file
from workshop.fixtures import Case, FixtureFile, FixtureModel, load_model
from workshop.model import Completion, ProviderError
from workshop.payload import Payload
from workshop.providers import OpenAIProvider

RecordMode = Literal["none", "new", "all"]
RECORD_MODES: tuple[RecordMode, ...] = ("none", "new", "all")


class Recording(FixtureModel):
    """One recorded answer. Holds no key and no header: only what the model said and what it cost."""

    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    prompt_version: str
    case_id: str
    trial: int = Field(ge=0)
    output_text: str
    refusal: str | None = None
    truncated: bool = False
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @classmethod
    def of(cls, completion: Completion, key: str, prompt_version: str, case_id: str, trial: int) -> Recording:
        """What to keep of a model's answer (the inverse of `completion`, but for latency)."""
        return cls(
            key=key,
            prompt_version=prompt_version,
            case_id=case_id,
            trial=trial,
            output_text=completion.text,
            refusal=completion.refusal,
            truncated=completion.truncated,
            model=completion.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
        )

    def completion(self) -> Completion:
        """The recorded answer, marked as replayed (it cost no call)."""
        return Completion(
            text=self.output_text,
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            refusal=self.refusal,
            truncated=self.truncated,
            replayed=True,
        )


class RecordingFile(FixtureFile):
    """``cases/recordings/<provider>--<model>.json``."""

    provider: str
    model: str
    recordings: list[Recording] = Field(default_factory=list)


def recording_key(provider: str, request: Mapping[str, Any], trial: int) -> str:
    """sha256 of the canonical request: provider, the exact body sent (model, instructions, input,
    settings, output format) and the trial number."""
    canonical = json.dumps(
        {"provider": provider, "request": request, "trial": trial},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def recording_path(directory: Path, provider: str, model: str) -> Path:
    """One file per provider and model; the model name made safe for a file name."""
    safe_model = re.sub(r"[^A-Za-z0-9._-]", "_", model)
    return directory / f"{provider}--{safe_model}.json"


class RecordingStore:
    """The recordings of one run: loaded lazily per file, new ones kept until `save`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[Path, dict[str, Recording]] = {}
        self._new: dict[Path, dict[str, Recording]] = {}
        self._headers: dict[Path, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def _loaded(self, path: Path) -> dict[str, Recording]:
        if path not in self._files:
            recorded = load_model(RecordingFile, path).recordings if path.exists() else []
            self._files[path] = {recording.key: recording for recording in recorded}
        return self._files[path]

    def get(self, provider: str, model: str, key: str) -> Recording | None:
        """The recording with ``key``, if there is one."""
        path = recording_path(self.directory, provider, model)
        with self._lock:
            return self._loaded(path).get(key)

    def put(self, provider: str, model: str, recording: Recording) -> None:
        """Keep a new recording (replacing one with the same key) until `save`."""
        path = recording_path(self.directory, provider, model)
        with self._lock:
            self._loaded(path)[recording.key] = recording
            self._new.setdefault(path, {})[recording.key] = recording
            self._headers[path] = (provider, model)

    def new_recordings(self) -> list[dict[str, Any]]:
        """What this process recorded, as plain data (xdist workers hand it to the controller)."""
        with self._lock:
            # the recording apart from its file's provider and model: a recording has a ``model`` of its own
            return [
                {
                    "provider": self._headers[path][0],
                    "model": self._headers[path][1],
                    "recording": recording.model_dump(),
                }
                for path, recordings in self._new.items()
                for recording in recordings.values()
            ]

    def add_recorded(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Take recordings made by another process."""
        for item in items:
            self.put(item["provider"], item["model"], Recording.model_validate(item["recording"]))

    def save(self) -> list[Path]:
        """Write every file that gained recordings, merged with what is on disk now; atomic per file."""
        written = []
        with self._lock:
            for path, new in self._new.items():
                provider, model = self._headers[path]
                on_disk = load_model(RecordingFile, path).recordings if path.exists() else []
                merged = {recording.key: recording for recording in on_disk} | new
                ordered = sorted(merged.values(), key=lambda r: (r.prompt_version, r.case_id, r.trial, r.key))
                document = RecordingFile(
                    schema_="../schemas/recordings.schema.json", provider=provider, model=model, recordings=ordered
                )
                text = json.dumps(document.model_dump(by_alias=True, exclude_none=True), indent=2, ensure_ascii=False)
                replace_file(path, (text + "\n").encode("utf-8", "surrogatepass"))
                written.append(path)
            self._new.clear()
        return written


class MissingRecording(ProviderError):
    """``--record-mode none`` and no recording for a request."""


class Recorder:
    """A provider behind recordings: replay what exists, call (and record) per the mode."""

    def __init__(self, provider: OpenAIProvider, store: RecordingStore, mode: RecordMode) -> None:
        self.provider = provider
        self.store = store
        self.mode = mode

    def complete(self, payload: Payload, case: Case, trial: int = 0) -> Completion:
        """Answer one trial of one cell from a recording or a call."""
        request = self.provider.request(payload)
        key = recording_key(self.provider.name, request, trial)
        if self.mode != "all":
            recorded = self.store.get(self.provider.name, payload.model, key)
            if recorded is not None:
                return recorded.completion()
        if self.mode == "none":
            where = recording_path(self.store.directory, self.provider.name, payload.model)
            raise MissingRecording(
                f"no recording of {payload.prompt_version} / {case.id} (trial {trial}, key {key[:12]}) in {where}; "
                f"record it with `pytest --provider {self.provider.name} --record-mode new`"
            )
        completion = self.provider.send(request)
        recording = Recording.of(completion, key, payload.prompt_version, case.id, trial)
        self.store.put(self.provider.name, payload.model, recording)
        return completion
