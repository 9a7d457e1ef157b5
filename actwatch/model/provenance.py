"""Whether a model was ever trained, and what its backbone started from: one reading for every surface.

A checkpoint's metadata (copied into an exported folder's ``manifest.json`` under ``checkpoint``) says
``trained: false`` for ``actwatch init-model`` output and ``trained: true`` after ``actwatch train``;
``backbone`` names the starting weights of the backbone (a weights file, or ``random``).
``model-info``, ``predict``, ``serve``'s start-up log, ``/readyz`` and the dashboard all show
:meth:`ModelProvenance.describe`, so a model that never learned is never silent.

Example:
    >>> p = ModelProvenance.from_metadata({"trained": False, "backbone": "random"})
    >>> p.untrained, p.describe()
    (True, 'UNTRAINED (never trained: its answers are meaningless; train it with `actwatch train`), backbone random')
    >>> ModelProvenance.from_metadata({"trained": True, "backbone": "mobilenet_v2-b0353104.pth"}).describe()
    'trained, backbone mobilenet_v2-b0353104.pth'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actwatch.model.manifest import Manifest

UNTRAINED = "UNTRAINED (never trained: its answers are meaningless; train it with `actwatch train`)"


@dataclass(frozen=True, slots=True)
class ModelProvenance:
    """``trained``: True, False, or None when the metadata does not say (older exports); ``backbone``: the
    backbone's starting weights (a file name, ``random`` or ``unknown``)."""

    trained: bool | None
    backbone: str

    @property
    def untrained(self) -> bool:
        """True only when the metadata says the model was never trained."""
        return self.trained is False

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ModelProvenance:
        trained = metadata.get("trained")
        backbone = metadata.get("backbone")
        # A path names the weights file; its folder (the user's cache) says nothing about the model.
        name = Path(str(backbone)).name if backbone not in (None, "") else "unknown"
        return cls(trained if isinstance(trained, bool) else None, name)

    def describe(self) -> str:
        """One phrase: trained or not (loudly when not), and the backbone's starting weights."""
        if self.trained is None:
            state = "training state unknown (exported before actwatch recorded it)"
        else:
            state = "trained" if self.trained else UNTRAINED
        return f"{state}, backbone {self.backbone}"

    def to_json(self) -> dict[str, Any]:
        """``{"trained": ..., "backbone": ...}`` for API responses.

        Example:
            >>> ModelProvenance(False, "random").to_json()
            {'trained': False, 'backbone': 'random'}
        """
        return {"trained": self.trained, "backbone": self.backbone}


def manifest_provenance(manifest: Manifest) -> ModelProvenance:
    """The provenance of an exported folder's :class:`~actwatch.model.manifest.Manifest`."""
    return ModelProvenance.from_metadata(dict(manifest.checkpoint.get("metadata") or {}))
