"""Measurement: session processes and paired rounds (``manager``), the head-to-head's statistic
(``verdict``), and what else uses the CPU (``load``)."""
