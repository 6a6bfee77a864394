"""Where Docket's bulk work runs: this process (``compute.engine: local``) or a Ray cluster (``ray``).

- ``cluster``: join or start the Ray cluster ``compute`` names, and leave it.
- ``ingest``: the Ray ingest driver. Workers read and OCR (one task a document, one a page that needs
  OCR) and encode (actors that load the encoder once); the driver alone writes the registry, one
  transaction per document version, in the order a local ingest would.
- ``ingest_tasks``: what those tasks and actors run (plain functions, wrapped for Ray on first use).
- ``workers``: actors that hold a Docket (registry, index, encoder, reasoner) and evaluate review cells
  or answer questions; the driver alone appends their results to the audit log.
- ``snapshots``: the settings and corpus entries a run's answers name, appended by the driver once each
  (also a corpus that changed mid-run, which the workers bring back with their results).
- ``llm_slots``: the cluster-wide limit on calls to the LLM (``llm.concurrency``), a named actor.
- ``review``: review cells on Ray (``pipeline.review.runner``'s cell executor).
- ``questions``, ``questions_file``: ``docket ask --questions FILE``, locally or on Ray (the command: ``pipeline.cli.batch``).

Ray is an optional extra (``pip install 'docket[ray]'``); nothing here imports it until it is used.
"""
