"""What the results say: per-pair comparisons, each chapter's tables and sentences, the answers to the research
questions and the advisor."""
