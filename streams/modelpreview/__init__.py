"""``leadstream model export`` and ``leadstream model preview``: what a model edit would
do, replayed over recorded input before it goes live (docs/model-preview.md).

- :mod:`~streams.modelpreview.exportfile`: the JSON-lines export format (one Kafka
  record a line), written and read here only;
- :mod:`~streams.modelpreview.export`: a bounded snapshot of the input topics to that
  file;
- :mod:`~streams.modelpreview.order`: the order the worker would have handled the
  records in, for one shard of the leads;
- :mod:`~streams.modelpreview.replay`: the worker's per-record steps under one model,
  decay ticks included;
- :mod:`~streams.modelpreview.shard`: one shard replayed under both models side by
  side; :mod:`~streams.modelpreview.parallel` runs the shards, in processes if asked;
- :mod:`~streams.modelpreview.tally`: what a replay counted, and merging the shards';
- :mod:`~streams.modelpreview.summary`: the rows both outputs show;
  :mod:`~streams.modelpreview.console` prints them (rich) and
  :mod:`~streams.modelpreview.report` draws them (plotly, one HTML file);
- :mod:`~streams.modelpreview.command`: the two subcommands.

Nothing here produces to Kafka or writes a lead state: the replay's states live in
memory and are dropped at the end.
"""
