"""``leadstream model export`` and ``leadstream model preview``: what a model edit would
do, replayed over recorded input before it goes live.

- :mod:`~streams.modelpreview.exportfile`: the JSON-lines export format (one Kafka
  record a line), written and read here only;
- :mod:`~streams.modelpreview.export`: a bounded snapshot of the input topics to that
  file;
- :mod:`~streams.modelpreview.order`: the order the worker would have handled the
  records in, for one shard of the leads;
- :mod:`~streams.modelpreview.replay`: one model's replay through the worker's own
  pipeline, decay ticks included;
- :mod:`~streams.modelpreview.shard`: one shard's replay under both models, side by
  side; :mod:`~streams.modelpreview.parallel` runs the shards in processes;
- :mod:`~streams.modelpreview.tally`: what a replay found, and merging the shards';
- :mod:`~streams.modelpreview.summary` (rich tables) and
  :mod:`~streams.modelpreview.report` (the HTML report, plotly);
- :mod:`~streams.modelpreview.command`: the two subcommands.

Nothing here produces to Kafka or writes a lead state: the replay's states live in
memory and are dropped at the end. See docs/model-preview.md.
"""
