"""Datasets that work offline: data enters the toolkit here."""

from .folders import load_audio_folder, load_image_folder
from .mnist import load_mnist
from .speech import COMMANDS, load_speech_commands, synthesize
from .store import CompressedStore

__all__ = [
    "load_mnist", "load_speech_commands", "synthesize", "COMMANDS", "load_image_folder", "load_audio_folder",
    "CompressedStore",
]  # fmt: skip
