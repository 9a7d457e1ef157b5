"""Behaviour signals that need no training: ``fallen`` (the detector's own class), ``loitering`` (dwell in
the camera's zone) and ``running`` (speed in body heights per second), alerted under the same rules as
the action model's classes.

* :mod:`actwatch.signals.settings`: the ``signals:`` section of the app config, and what each one scores;
* :mod:`actwatch.signals.behaviour`: the per-track computation (:class:`BehaviourSignals`);
* :mod:`actwatch.signals.stage`: the pipeline's signals phase (:class:`SignalStage`: signals -> rules -> events).

Nothing is imported here: the config package imports the settings, and the settings must not pull in
the service.
"""
