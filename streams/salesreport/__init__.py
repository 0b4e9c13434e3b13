"""``leadstream report``: the sales funnel after the fact, per scoring model version
(docs/kpis.md). It reads ``lead.qualified`` and ``lead.outcomes`` and tells whether
the model's MQLs and SQLs turned into opportunities and deals, how fast, and why not.

- :mod:`~streams.salesreport.read`: the export files, or a bounded snapshot of the
  topics (the model export's format and snapshot, ``streams.modelpreview``);
- :mod:`~streams.salesreport.history`: the records checked and kept small, per lead;
- :mod:`~streams.salesreport.kpis`: every KPI, pure and deterministic;
- :mod:`~streams.salesreport.rows`: the figures as rows, for both outputs;
  :mod:`~streams.salesreport.table` prints them (rich) and
  :mod:`~streams.salesreport.htmlreport` draws them (plotly, one HTML file);
- :mod:`~streams.salesreport.command`: the subcommand, for ``streams.cli``.

Nothing here writes to Kafka or commits an offset.
"""
