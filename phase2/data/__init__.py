"""The collections and their embeddings: BEIR-layout collections, the published read-only embedding stores, and
the models that embed what no store holds."""
