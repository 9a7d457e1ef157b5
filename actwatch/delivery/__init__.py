"""Delivery of alerts beyond the box's own API: MQTT, webhooks, a durable outbox, and the fleet hub.

- :mod:`~actwatch.delivery.settings`: ``mqtt:``, ``webhooks:`` and ``outbox:`` settings models.
- :mod:`~actwatch.delivery.payloads`: the event JSON, states, Home Assistant discovery, signatures.
- :mod:`~actwatch.delivery.outbox`: the outbox table beside the events and its delivery threads.
- :mod:`~actwatch.delivery.mqtt` and :mod:`~actwatch.delivery.webhook`: the two kinds of target.
- :mod:`~actwatch.delivery.service`: what ``create_app`` starts (:class:`DeliveryService`).
- :mod:`~actwatch.delivery.hub`: ``actwatch hub``, one event store for a fleet of boxes.

An event is stored and enqueued in one transaction, then each target's thread delivers it in order
and deletes it once acknowledged (MQTT PUBACK, HTTP 2xx). Nothing here runs on the compute thread.
"""
