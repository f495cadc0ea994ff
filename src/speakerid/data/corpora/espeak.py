"""Offline speech synthesis with the libespeak-ng shipped in the ``espeakng-loader`` wheel.

libespeak-ng keeps global state, so each process owns one :class:`Espeak`. Speakers are custom
voice-variant files written into a private copy of the data folder that holds only the languages
in use. espeak-ng lists at most 349 voices of a data folder, and the variants count: with more
speakers the language voices fall off the list, so voices are named by their language file's
path in lower case (``gmw/en-us+<variant>``), which espeak-ng loads without the list.
"""

import ctypes
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the audio is complete
_DONT_EXIT = 0x8000  # espeakINITIALIZE_DONT_EXIT: report errors instead of calling exit()
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4

# espeak-ng voice name -> (file under lang/, dictionary file)
LANGUAGE_FILES = {
    "en": ("gmw/en", "en_dict"),
    "en-us": ("gmw/en-US", "en_dict"),
    "de": ("gmw/de", "de_dict"),
    "es": ("roa/es", "es_dict"),
    "fr": ("roa/fr", "fr_dict"),
}
_SHARED_FILES = ("phondata", "phonindex", "phontab", "intonations")

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def voice_name(language: str, variant: str) -> str:
    """The name that selects ``language`` (a key of :data:`LANGUAGE_FILES`) with a variant file:
    by the language file's path, which works with any number of variants in the data folder."""
    return f"{LANGUAGE_FILES[language][0].lower()}+{variant}"


def make_data_dir(dst: Path, languages: Sequence[str], variants: Mapping[str, str]) -> Path:
    """Build an espeak-ng data folder with ``languages`` and the given voice-variant files.

    Args:
        dst: folder to create; the data folder is ``dst/espeak-ng-data``.
        languages: espeak voice names, keys of :data:`LANGUAGE_FILES`.
        variants: variant name -> variant file text (see :func:`variant_file`).
    """
    import espeakng_loader

    src = Path(espeakng_loader.get_data_path())
    data = dst / "espeak-ng-data"
    shutil.rmtree(data, ignore_errors=True)
    (data / "voices" / "!v").mkdir(parents=True)
    dicts = {LANGUAGE_FILES[lang][1] for lang in languages}
    for name in (*_SHARED_FILES, *dicts):
        os.symlink(src / name, data / name)
    for lang in languages:
        rel = LANGUAGE_FILES[lang][0]  # espeak-ng looks up voice paths in lower case
        (data / "lang" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "lang" / rel, data / "lang" / rel.lower())
    for name, text in variants.items():
        (data / "voices" / "!v" / name).write_text(text)
    return data


def variant_file(
    name: str,
    gender: str,
    pitch: tuple[int, int],
    formants: Sequence[tuple[int, int, int]],
    breath: int,
    roughness: int,
    flutter: int,
    klatt: int,
) -> str:
    """Text of an espeak-ng voice-variant file (see espeak-ng's docs/voices.md)."""
    lines = [
        "language variant",
        f"name {name}",
        f"gender {gender}",
        f"pitch {pitch[0]} {pitch[1]}",
        f"roughness {roughness}",
        f"flutter {flutter}",
    ]
    lines += [f"formant {i} {f} {h} {w}" for i, (f, h, w) in enumerate(formants)]
    if breath:
        lines.append("breath " + " ".join(str(breath) for _ in range(8)))
    if klatt:
        lines.append(f"klatt {klatt}")
    return "\n".join(lines) + "\n"


class Espeak:
    """One process's libespeak-ng, synthesizing to float32 arrays.

    Example:
        >>> tts = Espeak(make_data_dir(tmp, ["en"], {"v1": variant_file(...)}))  # doctest: +SKIP
        >>> wav = tts.synthesize("hello world", "en+v1", rate=170)  # doctest: +SKIP
    """

    def __init__(self, data_dir: Path) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._chunks: list[np.ndarray] = []
        self._callback = _Callback(self._collect)  # keep a reference: C holds only a pointer
        rate = self._lib.espeak_Initialize(_SYNCHRONOUS, 0, str(data_dir).encode(), _DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"libespeak-ng failed to initialize with data folder {data_dir}")
        self.sample_rate = int(rate)
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), n: int, _events: int) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synthesize(
        self, text: str, voice: str, rate: int, pitch: int = 50, range_: int = 50
    ) -> np.ndarray:
        """Speak ``text`` with ``voice`` ("lang+variant") at ``rate`` words/min.

        ``pitch`` and ``range_`` (0-100, 50 = the variant's own) shift the variant's pitch.
        Returns float32 samples in [-1, 1] at :attr:`sample_rate`.
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, range_)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        data = text.encode("utf-8")
        self._chunks = []
        err = self._lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        self._lib.espeak_Synchronize()
        if err != 0 or not self._chunks:
            raise RuntimeError(
                f"espeak-ng failed to speak {text[:40]!r} with {voice!r} (error {err})"
            )
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0
