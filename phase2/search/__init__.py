"""Search beyond the codecs' exhaustive scans: the methods every throughput run measures behind one interface (ours,
faiss, usearch, ScaNN, rabitqlib, Milvus), their registry and grids, stores read from disk, and the cache of built
indexes."""
