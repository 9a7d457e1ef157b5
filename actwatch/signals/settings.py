"""Settings of the behaviour signals (``signals:`` in the app config): what each one measures and its label.

Each signal is a label the alert rules can name like a model class (``alerts.rules``: threshold, N-of-M,
cooldown, minimum track age and the camera's zone all apply). Its score per track and step is:

* ``fallen``: the share of the track's last ``samples`` detections that the detector classed as fallen
  (the default detector's class ``Fall``);
* ``loitering``: 1 once the track has stayed inside the camera's zone (the whole frame without a zone)
  for ``min_dwell_s`` seconds of stream time without leaving it, else 0;
* ``running``: 1 while the track's box centre moves at least ``min_speed`` body heights (box heights)
  per second over the last ``window_s`` seconds of stream time, else 0.

Example:
    >>> s = SignalsSettings.model_validate({"loitering": {"min_dwell_s": 5}})
    >>> s.labels(), s.loitering.min_dwell_s, s.fallen.class_names
    (('fallen', 'loitering', 'running'), 5.0, ['Fall'])
"""

from __future__ import annotations

from pydantic import Field, model_validator

from actwatch.settings import StrictModel

_LABEL = r"^[A-Za-z0-9_.:-]+$"


class FallenSettings(StrictModel):
    """``fallen``: the detector's own class for the track's box, as a share over its recent samples."""

    label: str = Field("fallen", pattern=_LABEL, max_length=128, description="Label of the signal in alert rules.")
    class_names: list[str] = Field(
        default_factory=lambda: ["Fall"],
        description="Detector classes (by name, case-insensitive) that mean a fallen person; the default "
        "detector's classes are Normal and Fall. A detector without such a class never scores fallen.",
    )
    class_ids: list[int] | None = Field(
        None, description="Detector class ids that mean a fallen person; when set, they replace class_names."
    )
    samples: int = Field(5, ge=1, le=1000, description="Recent detections of the track the share is taken over.")


class LoiteringSettings(StrictModel):
    """``loitering``: a track that stays inside the camera's zone longer than ``min_dwell_s``."""

    label: str = Field("loitering", pattern=_LABEL, max_length=128, description="Label of the signal in alert rules.")
    min_dwell_s: float = Field(
        30.0,
        gt=0,
        le=86400,
        description="Seconds of stream time a track must stay in the zone (bottom-centre of its box; the whole "
        "frame when the camera has no zone) before it scores 1. Leaving the zone starts the count again.",
    )


class RunningSettings(StrictModel):
    """``running``: speed in body heights per second over a short window of the track's boxes."""

    label: str = Field("running", pattern=_LABEL, max_length=128, description="Label of the signal in alert rules.")
    min_speed: float = Field(
        1.5,
        gt=0,
        le=100,
        description="Body heights per second (box-centre displacement / mean box height / seconds) at or above "
        "which a track scores 1. Walking is about 0.5-1, running 2 or more.",
    )
    window_s: float = Field(
        1.0, gt=0, le=60, description="Seconds of stream time the speed is measured over (oldest to newest box)."
    )


class SignalsSettings(StrictModel):
    """The behaviour signals that need no training: ``fallen``, ``loitering`` and ``running``."""

    fallen: FallenSettings = Field(default_factory=FallenSettings, description="Fallen person (detector class).")
    loitering: LoiteringSettings = Field(
        default_factory=LoiteringSettings, description="A person dwelling in the camera's zone."
    )
    running: RunningSettings = Field(default_factory=RunningSettings, description="A person moving fast.")

    @model_validator(mode="after")
    def _distinct_labels(self) -> SignalsSettings:
        labels = self.labels()
        if len(set(labels)) != len(labels):
            raise ValueError(f"signal labels must differ, got {list(labels)}")
        return self

    def labels(self) -> tuple[str, str, str]:
        """The labels, in the order of a signal score row: fallen, loitering, running."""
        return (self.fallen.label, self.loitering.label, self.running.label)
