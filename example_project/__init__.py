"""The example project: a job scheduler whose naive pages show django_dbperf's "before"."""
