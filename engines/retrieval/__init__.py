"""Retrieval and its evaluation: BM25, dense and hybrid search, chunking, the BBC corpus, metrics, RAG.

Entry points other code relies on (import them from their modules; this package
imports nothing so that ``import workbench_engines.retrieval`` stays cheap):

- :class:`workbench_engines.retrieval.bm25.BM25Index` (``from_texts``, ``search``,
  ``search_many``, ``scores``, ``explain``): eager BM25 whose scores equal bm25s's;
- :func:`workbench_engines.retrieval.tokenizer.tokenize`: bm25s's default tokenisation;
- :func:`workbench_engines.retrieval.corpora.load_bbc` and ``headline_task``;
- :mod:`workbench_engines.retrieval.metrics`: recall@k, MRR, nDCG@k;
- :func:`workbench_engines.retrieval.fusion.rrf`: reciprocal-rank fusion;
- :mod:`workbench_engines.retrieval.chunking`: fixed, sentence and recursive chunks with spans;
- :mod:`workbench_engines.retrieval.dense`: MiniLM document vectors, cached on disk, searched exactly;
- :mod:`workbench_engines.retrieval.compare`: BM25, dense, RRF, rerank and chunked retrieval on the headline task;
- :mod:`workbench_engines.retrieval.rag`: the plays' passages, a question set, and SmolLM2 reading what BM25 found.
"""
