"""actwatch: real-time behaviour recognition for CCTV and webcams.

Data flow, one subpackage per stage::

    capture (Frame) -> tracker (Detections, TrackWindow) -> model (ONNX encoder + head)
        -> service (Event: alert rules, store, REST + WebSocket)

``train`` and ``export`` produce what ``model`` runs.
"""

__version__ = "0.1.0"
