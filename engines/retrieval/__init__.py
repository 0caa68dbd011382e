"""Lexical retrieval and its evaluation: BM25, tokenisation, the BBC corpus, metrics, fusion, chunking.

Entry points other code relies on (import them from their modules; this package
imports nothing so that ``import workbench_engines.retrieval`` stays cheap):

- :class:`workbench_engines.retrieval.bm25.BM25Index` (``from_texts``, ``search``,
  ``search_many``, ``scores``, ``explain``): eager BM25 whose scores equal bm25s's;
- :func:`workbench_engines.retrieval.tokenizer.tokenize`: bm25s's default tokenisation;
- :func:`workbench_engines.retrieval.corpora.load_bbc` and ``headline_task``;
- :mod:`workbench_engines.retrieval.metrics`: recall@k, MRR, nDCG@k;
- :func:`workbench_engines.retrieval.fusion.rrf`: reciprocal-rank fusion;
- :mod:`workbench_engines.retrieval.chunking`: fixed, sentence and recursive chunks with spans.
"""
