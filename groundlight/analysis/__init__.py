"""Method-agnostic analysis: no-model controls, aggregation over seeds, attention quality and the demo.

Each method package owns its own report (``groundlight.methods.<method>.report``); what every
method shares lives here.
"""
