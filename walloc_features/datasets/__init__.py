"""Datasets that work offline: data enters the toolkit here."""

from .mnist import load_mnist
from .speech import COMMANDS, load_speech_commands, synthesize

__all__ = ["load_mnist", "load_speech_commands", "synthesize", "COMMANDS"]
