"""The index advisor: evidence from the queries a project runs becomes ``Meta.indexes``.

The flow: the workload (the statistics store's shapes and pg_stat_statements rows) ->
``parsing.py`` (pglast: predicates, joins and sorts per table) -> ``candidates.py`` ->
``costing.py`` (hypopg: plan costs before and after) -> ``selection.py`` (a small set for the
whole workload, net of write cost) -> ``modules.py`` writes ``<app>/dbperf_indexes.py`` ->
``declarations.py`` adds those to the models' ``Meta.indexes`` at startup, so plain
``makemigrations`` writes the migration -> ``building.py`` makes the concurrent build safe ->
``verification.py`` checks the planner uses what was built.
"""
