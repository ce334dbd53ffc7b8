"""What is computed, once: chapter parameters and plans, the tasks precompute runs, the searches and throughput
runs they make, and the results tables they leave."""
