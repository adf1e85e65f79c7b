"""The order fulfillment example: one workflow family that uses every step type.

``OrderFulfillment`` screens an order (PARALLEL checks, with a manual review inserted by
``dynamic_injection`` for risky ones), reserves stock (one PARALLEL branch per line),
picks the lines (LOOP), gift-wraps when asked (DECISION), asks a carrier for a quote
(HTTP), ships through the ``Shipment`` sub-workflow, starts a ``CustomerEmail`` workflow
(FIRE_AND_FORGET) and keeps a daily ``StockReport`` scheduled (CRON_SCHEDULE).
``carrier.py`` is a stand-in carrier API for the demo and the tests.
"""
