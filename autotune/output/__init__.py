"""What autotune prints and writes: terminal tables, the HTML report, code snippets, and the
inspection of a model."""
